"""The pipeline follows the store's ACTIVE pointers: a new version is loaded, checked and warmed
on a background thread (lower CPU priority), then handed to `RecognitionWorker.swap`, which
replaces the stage between two recognition runs. The frame path never waits for any of it.
Detector, recognizer and translator are followed (unless the config pins their version).

It follows the SHADOW pointers too: a new challenger is loaded the same way and the worker's
shadow hook replaced between runs; a cleared pointer (or one that now names the active
version) stops shadowing that stage.

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

from device.errors import EdgelensError
from device.metrics import Metrics
from device.modelstore.health import FrameHealth, HealthSettings, precheck
from device.modelstore.install import read_health, write_health
from device.modelstore.pointers import shadow_version
from device.modelstore.shadow import load_challenger
from device.modelstore.store import ModelStore, ModelVersion

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


class ShadowFollow:
    """The SHADOW pointers of the stages that may have a challenger, and the hook factory
    that turns loaded challengers into the worker's after_result."""

    def __init__(self, loaders: dict[str, Any], make_hook: Callable[[list], Any],
                 challengers: list | None = None):
        self.loaders, self.make_hook = loaders, make_hook
        self.challengers = {c.stage: c for c in challengers or []}
        self.versions = {c.stage: c.version for c in challengers or []}

    def poll(self, store: ModelStore, worker: Any) -> None:
        wanted: dict[str, str] = {}
        for stage, loader in self.loaders.items():
            try:
                version = shadow_version(store, loader.name)
            except EdgelensError:
                version = None              # a pointer to a missing version: no challenger
            if version is not None:
                wanted[stage] = version
        if wanted == self.versions:
            return
        loaded = {}
        for stage, version in wanted.items():
            current = self.challengers.get(stage)
            if current is not None and current.version == version:
                loaded[stage] = current
                continue
            challenger = load_challenger(stage, self.loaders[stage], store)
            if challenger is not None and challenger.version == version:
                loaded[stage] = challenger
        self.versions, self.challengers = wanted, loaded
        worker.swap(after_result=self.make_hook(list(loaded.values())))
        log.info("shadowing", extra={
            "challengers": [f"{c.stage} {c.version}" for c in loaded.values()]})


class ModelWatch:
    def __init__(self, store: ModelStore, worker: Any, metrics: Metrics, watched: list[Watched],
                 health: HealthSettings, backend: str, interval_s: float = 1.0,
                 recorder: Any = None, on_swap: Callable[[Watched], None] | None = None,
                 shadows: ShadowFollow | None = None):
        self.store, self.worker, self.metrics = store, worker, metrics
        self.watched, self.health, self.backend = watched, health, backend
        self.interval_s, self.recorder, self.on_swap = interval_s, recorder, on_swap
        self.shadows = shadows
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
                    log.error("model watch failed",
                              extra={"model": item.name, "error": str(exc)})
                except Exception as exc:  # noqa: BLE001 - one bad look never ends the watch
                    log.exception("model watch failed",
                                  extra={"model": item.name,
                                         "error": f"{type(exc).__name__}: {exc}"})
            if self.shadows is not None:
                try:
                    self.shadows.poll(self.store, self.worker)
                except (EdgelensError, OSError) as exc:
                    log.error("following the shadow pointers failed",
                              extra={"error": str(exc)})
                except Exception as exc:  # noqa: BLE001 - as above
                    log.exception("following the shadow pointers failed",
                                  extra={"error": f"{type(exc).__name__}: {exc}"})

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
                log.error("model not swapped in", extra={
                    "model": item.name, "version": active, "reason": verdict["reason"]})
                return
            checks = verdict["checks"]
        instance = item.loader(version)           # load + allocate + warm, off the frame path
        self._swap(item, active, instance)
        if known is None:
            item.judging = (version, FrameHealth(self.metrics, self.health), checks)

    def _swap(self, item: Watched, version: str, instance: Any) -> None:
        item.previous = (item.version, item.instance)
        item.version, item.instance, item.judging = version, instance, None
        self.worker.swap(versions={item.stage: version}, **{item.stage: instance})
        log.info("model swapped in", extra={"model": item.name, "version": version})
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
            log.error("model unhealthy; serving the previous version again until the sync "
                      "agent rolls back", extra={
                          "model": item.name, "version": item.version,
                          "reason": verdict["reason"], "serving": item.previous[0]})
            item.rejected = item.version
            self._swap(item, item.previous[0], item.previous[1])

    def _audit(self, action: str, verdict: dict) -> None:
        if self.recorder is not None:
            self.recorder.audit(action, {"model": verdict["name"],
                                         "version": verdict["version"],
                                         "reason": verdict["reason"], "by": "pipeline"})
