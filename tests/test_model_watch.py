"""Hot swap in the live pipeline: a new ACTIVE version is checked and loaded off the frame path,
swapped between recognition runs, judged over the first frames; the frame path and recognition
never wait for a load (the test holds the load and watches them go on: no test here depends on
the speed of the machine; the frames a swap drops are measured by the update benchmark)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from device.live.capture import Capture
from device.stages.detector import Detector
from device.geometry import crop_line
from device.metrics import Metrics, percentiles
from device.modelstore.health import HealthSettings
from device.modelstore.install import read_health, set_active
from device.modelstore.store import ModelStore
from device.modelstore.watch import ModelWatch, Watched
from device.live.pipeline import FramePathSettings, Pipeline
from device.live.recognition import Budgets, RecognitionWorker
from device.stages.recognizer import LineReading
from device.live.sources import SyntheticSource
from sync_helpers import wait_until
from update_helpers import make_version


class BlankRecognizer:
    """Stands in for the recognizer model (not in the store yet): reads nothing, quickly."""
    backend = "none"

    def read(self, crop: np.ndarray) -> LineReading:
        return LineReading(text="", confidence=0.0)


def _p95(samples: np.ndarray) -> float | None:
    return percentiles(samples, (95,))["p95"]


@pytest.mark.slow
def test_hot_swap_loads_off_the_frame_path_and_judges_the_new_version(tmp_path):
    root = tmp_path / "models"
    for version in ("1.0.0", "1.1.0"):
        make_version(root, version)
    make_version(root, "1.2.0", budget_ms=0.0001)              # fails its latency check
    store = ModelStore(root)
    set_active(store, "detector", "1.0.0")
    loading, release = threading.Event(), threading.Event()

    def load(v):
        detector = Detector(v.artifact, backend="auto", num_threads=1)
        if v.version == "1.1.0" and not release.is_set():
            loading.set()
            release.wait(60)          # held until the test has seen the pipeline go on
        return detector

    first = load(store.get("detector", "1.0.0"))
    metrics = Metrics()
    worker = RecognitionWorker(first, BlankRecognizer(), crop_line, metrics,
                               Budgets(recognition_ms=400))
    capture = Capture(SyntheticSource(seed=3, fps=20, realtime=True), metrics)
    pipeline = Pipeline(capture, worker, metrics, FramePathSettings(frame_budget_ms=50))
    watch = ModelWatch(store, worker, metrics, [Watched("detector", "detector", load, "1.0.0",
                                                        first)],
                       HealthSettings(frames=20, max_miss_rate=1.0, latency_runs=2), "auto",
                       interval_s=0.1)
    runner = threading.Thread(target=pipeline.run, daemon=True)
    runner.start()
    watch.start()
    try:
        assert wait_until(lambda: metrics.counter("frames_displayed") >= 30, 30)
        idle_frames = len(metrics.histogram("frame_path").samples())
        idle_dropped = metrics.counter("frames_dropped")
        idle = metrics.histogram("frame_path").samples()[10:]
        t0 = time.perf_counter()
        set_active(store, "detector", "1.1.0")
        assert wait_until(loading.is_set, 30)
        # while the new version loads, frames are shown and recognized with the old one
        shown, runs = (metrics.counter("frames_displayed"),
                       metrics.counter("recognition_runs_started"))
        assert wait_until(lambda: metrics.counter("frames_displayed") >= shown + 10, 30)
        assert wait_until(lambda: metrics.counter("recognition_runs_started") >= runs + 2, 30)
        assert worker.detector is first and metrics.counter("model_swaps") == 0
        release.set()
        assert wait_until(lambda: metrics.counter("model_swaps") >= 1, 30)
        swap_s = time.perf_counter() - t0
        assert worker.detector is not first
        # results made after the swap name the version that made them (fleet status truth)
        assert wait_until(lambda: worker.versions.get("detector") == "1.1.0", 10)
        verdict = None
        assert wait_until(lambda: read_health(root / "detector" / "1.1.0") is not None, 30)
        verdict = read_health(root / "detector" / "1.1.0")
        during = metrics.histogram("frame_path").samples()[idle_frames:]
        swap_dropped = metrics.counter("frames_dropped") - idle_dropped
        # a version failing its precheck is never swapped in
        set_active(store, "detector", "1.2.0")
        assert wait_until(lambda: read_health(root / "detector" / "1.2.0") is not None, 30)
        # ACTIVE back to 1.1.0 (what the sync agent does) → nothing to load
        set_active(store, "detector", "1.1.0")
        time.sleep(0.3)
    finally:
        release.set()
        watch.stop()
        pipeline.stop_event.set()
        runner.join(10)
    print(f"\nswap (its load held by the test) applied in {swap_s * 1000:.0f} ms; dropped during "
          f"swap+judging: {swap_dropped} (idle before: {idle_dropped}); frame_path p95 idle "
          f"{_p95(idle)} ms vs during load/swap/judge {_p95(during)} ms")
    assert verdict["healthy"] is True and verdict["stage"] == "frames", verdict
    bad = read_health(root / "detector" / "1.2.0")
    assert bad["healthy"] is False and "over the budget" in bad["reason"]
    assert metrics.counter("model_swaps") == 1
    assert metrics.counter("recognition_errors") == 0


def test_prediction_records_name_the_version_that_produced_them():
    import numpy as np

    from device.live.observe import PipelineTelemetry
    from device.live.recognition import RecognitionResult, RecognizedLine

    class Recorder:
        def __init__(self):
            self.predictions = []

        def confidence(self, value):
            pass

        def prediction(self, p):
            self.predictions.append(p)

    recorder = Recorder()
    telemetry = PipelineTelemetry(recorder, {"detector": "1.0.0", "recognizer": "1.0.0"},
                                  {"detector": "detector", "recognizer": "recognizer"})
    line = RecognizedLine(np.float32([[0, 0], [10, 0], [10, 5], [0, 5]]), "Ausgang", 0.9,
                          "Exit", "phrasebook", (0, 0, 0), (255, 255, 255))
    telemetry(RecognitionResult(1, 0.0, 0.1, (line,), {}, (), {"detector": "1.0.0",
                                                             "recognizer": "1.0.0"}))
    telemetry(RecognitionResult(2, 0.0, 0.1, (line,), {}, (), {"detector": "2.0.0",
                                                             "recognizer": "1.0.0"}))
    first, second = recorder.predictions
    assert first.models["detector"].version == "1.0.0"
    assert second.models["detector"].version == "2.0.0"       # after a hot swap
    assert second.models["recognizer"].version == "1.0.0"


def test_the_shadow_hook_changes_through_the_same_swap_as_the_models():
    """One swap mechanism: the model watch replaces the worker's after_result hook with
    worker.swap, applied at the next run boundary like a model, and not counted as one."""
    metrics = Metrics()
    worker = RecognitionWorker(None, BlankRecognizer(), crop_line, metrics,
                               Budgets(recognition_ms=400))

    def hook(*_):
        return None

    worker.swap(after_result=hook)
    assert worker.after_result is None                 # not between two steps of a run
    worker._apply_swap()
    assert worker.after_result is hook and worker.swapped.is_set()
    assert metrics.counter("model_swaps") == 0
    worker.swap(recognizer=BlankRecognizer(), versions={"recognizer": "9.9.9"})
    worker._apply_swap()
    assert metrics.counter("model_swaps") == 1 and worker.versions["recognizer"] == "9.9.9"
    with pytest.raises(ValueError, match="cannot swap"):
        worker.swap(overlay=object())


def test_the_watch_goes_on_after_a_look_fails_in_an_unforeseen_way(tmp_path):
    # a manifest or ACTIVE pointer no check foresaw raised a TypeError in one look, which
    # ended the watch thread: no hot swap or rollback until a restart
    looks = []

    class Item:
        name = "detector"

    watch = ModelWatch(ModelStore(tmp_path), None, Metrics(), [Item()], HealthSettings(),
                       "auto", interval_s=0.01)

    def poll(item):
        looks.append(item)
        if len(looks) == 1:
            raise TypeError("string indices must be integers")

    watch.poll = poll
    watch.start()
    try:
        assert wait_until(lambda: len(looks) >= 3, 10)
        assert watch._thread.is_alive()
    finally:
        watch.stop()
