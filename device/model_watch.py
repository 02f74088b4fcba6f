"""The pipeline follows the store's ACTIVE pointers: a new version is loaded, checked and warmed
on a background thread (lower CPU priority), then handed to `RecognitionWorker.swap`, which
replaces the stage between two recognition runs. The frame path never waits for any of it.

After the swap the first `health_frames` frames are judged (recognition error and miss rates);
the verdict goes to models/<name>/<version>/HEALTH.json (and an audit record), where the sync
agent reads it and rolls back when it says unhealthy. A version whose precheck fails (golden
self-test, latency over budget_ms) is never swapped in. When ACTIVE goes back to the version
that ran before, the kept instance is swapped back without loading anything.

    watch = start_model_watch(cfg, pipeline, stages, recorder)   # device/commands/run.py
    ...
    watch.stop()
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from device.errors import EdgelensError
from device.metrics import Metrics
from device.model_health import FrameHealth, HealthSettings, precheck
from device.model_install import read_health, write_health
from device.model_store import ModelStore, ModelVersion

log = logging.getLogger(__name__)

Loader = Callable[[ModelVersion], Any]


@dataclass
class Watched:
    stage: str                  # worker attribute: detector, recognizer, translator
    name: str                   # model name in the store
    loader: Loader
    version: str                # the version serving now
    instance: Any = None        # the object serving now
    previous: tuple[str, Any] | None = None   # (version, instance) that served before
    judging: tuple[ModelVersion, FrameHealth, dict] | None = None
    rejected: str | None = None  # a version whose precheck failed (not retried)


class ModelWatch:
    def __init__(self, store: ModelStore, worker: Any, metrics: Metrics, watched: list[Watched],
                 health: HealthSettings, backend: str, interval_s: float = 1.0,
                 recorder: Any = None, on_swap: Callable[[Watched], None] | None = None):
        self.store, self.worker, self.metrics = store, worker, metrics
        self.watched, self.health, self.backend = watched, health, backend
        self.interval_s, self.recorder, self.on_swap = interval_s, recorder, on_swap
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-watch", daemon=True)

    def start(self) -> "ModelWatch":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:   # Linux: per-thread niceness, so loading and checking yield to the frame path
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (OSError, AttributeError):
            pass
        while not self._stop.wait(self.interval_s):
            for item in self.watched:
                try:
                    self.poll(item)
                except (EdgelensError, OSError) as exc:
                    log.error("model watch on %s failed: %s", item.name, exc)

    # --- one look at one model -----------------------------------------------------------------

    def poll(self, item: Watched) -> None:
        if item.judging is not None:
            self._judge(item)
        active = self.store.active_version(item.name)
        if active == item.version or active == item.rejected:
            return
        if item.previous is not None and item.previous[0] == active:
            self._swap(item, active, item.previous[1])     # rolled back: instant
            return
        version = self.store.get(item.name, active)
        known = read_health(version.directory)
        if known is not None and known.get("healthy") is True:
            checks = known.get("checks", {})
        else:
            verdict = precheck(version, self.backend, self.health)
            if not verdict["healthy"]:
                verdict["judge"] = "pipeline"
                write_health(version.directory, verdict)
                self._audit("model_unhealthy", verdict)
                item.rejected = active
                log.error("%s %s not swapped in: %s", item.name, active, verdict["reason"])
                return
            checks = verdict["checks"]
        instance = item.loader(version)           # load + allocate + warm, off the frame path
        self._swap(item, active, instance)
        if known is None:
            item.judging = (version, FrameHealth(self.metrics, self.health), checks)

    def _swap(self, item: Watched, version: str, instance: Any) -> None:
        item.previous = (item.version, item.instance)
        item.version, item.instance, item.judging = version, instance, None
        self.worker.swap(**{item.stage: instance})
        log.info("%s %s swapped in", item.name, version)
        if self.on_swap is not None:
            self.on_swap(item)

    def _judge(self, item: Watched) -> None:
        version, frames, checks = item.judging
        verdict = frames.judge(version, checks)
        if verdict is None:
            return
        item.judging = None
        verdict["judge"] = "pipeline"
        write_health(version.directory, verdict)
        self._audit("model_healthy" if verdict["healthy"] else "model_unhealthy", verdict)
        if not verdict["healthy"] and item.previous is not None:
            log.error("%s %s unhealthy (%s); serving %s again until the sync agent rolls "
                      "back", item.name, item.version, verdict["reason"], item.previous[0])
            item.rejected = item.version
            self._swap(item, item.previous[0], item.previous[1])

    def _audit(self, action: str, verdict: dict) -> None:
        if self.recorder is not None:
            self.recorder.audit(action, {"model": verdict["name"],
                                         "version": verdict["version"],
                                         "reason": verdict["reason"], "by": "pipeline"})


# --- the service's hook -----------------------------------------------------------------------

def _loaders(cfg: Any, backend: str) -> dict[str, tuple[str, str, Loader]]:
    """stage → (model name, pinned version, loader) for the stages the pipeline swaps."""
    from device.detector import Detector, DetectorParams
    from device.recognizer import Recognizer
    d = cfg.detector
    params = DetectorParams(bin_threshold=d.bin_threshold, box_threshold=d.box_threshold,
                            unclip_ratio=d.unclip_ratio, min_area=d.min_area,
                            max_regions=d.max_regions)
    threads = cfg.runtime.num_threads

    def detector(version: ModelVersion) -> Any:
        loaded = Detector(version.artifact, backend=backend, num_threads=threads, params=params)
        loaded.detect(np.zeros((d.input_height, d.input_width, 3), np.uint8))   # warm up
        return loaded

    return {
        "detector": (d.model, d.version, detector),
        "recognizer": (cfg.models.recognizer, cfg.models.recognizer_version,
                       lambda v: Recognizer(v.artifact, backend=backend, num_threads=threads)),
    }


def start_model_watch(cfg: Any, pipeline: Any, stages: Any, recorder: Any = None
                      ) -> ModelWatch | None:
    """Watch the detector and recognizer of a built pipeline (stages not pinned to a version
    in the config); keeps `stages` current so a rebuilt pipeline starts on the new models.
    None when [updates] is off."""
    if not cfg.updates.enabled:
        return None
    backend = stages.recognizer.backend
    watched = []
    for stage, (name, pinned, loader) in _loaders(cfg, backend).items():
        if pinned or stage not in stages.versions:
            continue
        watched.append(Watched(stage, name, loader, stages.versions[stage],
                               getattr(stages, stage)))

    def keep_current(item: Watched) -> None:
        setattr(stages, item.stage, item.instance)
        stages.versions[item.stage] = item.version

    return ModelWatch(ModelStore(cfg.models.store or None), pipeline.worker, pipeline.metrics,
                      watched, HealthSettings.from_config(cfg.updates), backend,
                      cfg.updates.watch_interval_s, recorder, keep_current).start()
