"""Build the live pipeline's parts from the config: models from the store, source, display."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import cv2

from device.audio.speaker import build_speaker
from device.config import Config
from device.errors import EdgelensError
from device.live.capture import Capture
from device.live.observe import PipelineTelemetry
from device.live.pipeline import FramePathSettings, Pipeline
from device.live.rate import RateSettings
from device.live.recognition import Budgets, RecognitionWorker
from device.live.sources import FrameSource, parse_source
from device.live.tracker import MotionTracker
from device.metrics import Metrics
from device.modelstore.pointers import checked
from device.modelstore.health import HealthSettings
from device.modelstore.shadow import ShadowRunner, load_challengers
from device.modelstore.store import ModelStore
from device.modelstore.watch import ModelWatch, ShadowFollow, Watched
from device.geometry import crop_line
from device.stages.loaders import stage_loaders
from device.stages.lexicon import Lexicon
from device.stages.recognizer import Recognizer
from device.telemetry.records import ModelRef

log = logging.getLogger(__name__)


@dataclass
class Stages:
    detector: Any
    recognizer: Recognizer
    translator: Any | None
    crop_line: Any
    versions: dict[str, str]
    shadows: list = field(default_factory=list)   # device.modelstore.shadow.Challenger per SHADOW pointer
    lexicon: Lexicon = field(default_factory=Lexicon)   # the recognizers' words (the phrasebook's)


def set_opencv_threads(cfg: Config) -> None:
    """[runtime] opencv_threads, process-wide (0: OpenCV's default, a worker per core; set
    again on every build, so a reload to 0 restores it)."""
    cv2.setNumThreads(cfg.runtime.opencv_threads or -1)


def load_translator(cfg: Config, store: ModelStore, backend: str) -> tuple[Any | None, str | None]:
    """The translator when its model is in the store; None (recognized text is shown) else."""
    loader = stage_loaders(cfg, backend)["translator"]
    try:
        version = checked(store.get(loader.name, loader.pinned or None))
        translator = loader.build(version)
    except EdgelensError as exc:
        log.warning("translation unavailable; showing recognized text", extra={"error": str(exc)})
        return None, None
    return translator, version.version


def load_stages(cfg: Config, backend: str | None = None, translate: bool = True) -> Stages:
    backend = backend or cfg.runtime.backend
    store = ModelStore.for_config(cfg)
    lexicon = Lexicon()
    loaders = stage_loaders(cfg, backend, lexicon)
    built, versions = {}, {}
    for stage in ("detector", "recognizer"):
        version = checked(store.get(loaders[stage].name, loaders[stage].pinned or None))
        built[stage], versions[stage] = loaders[stage].build(version), version.version
    translator = None
    if translate:
        translator, tr_version = load_translator(cfg, store, backend)
        lexicon.fill(translator.phrasebook if translator is not None else None)
        if tr_version:
            versions["translator"] = tr_version
    return Stages(built["detector"], built["recognizer"], translator, crop_line, versions,
                  load_challengers(cfg, store, backend, lexicon), lexicon)


def translator_in_background(cfg: Config, pipeline: Pipeline, stages: Stages,
                             backend: str | None = None) -> threading.Thread:
    """Load the translator off the start-up path (its phrasebook takes a second or two) and
    swap it into the running pipeline; recognized text is shown until then."""
    def load() -> None:
        translator, version = load_translator(cfg, ModelStore.for_config(cfg),
                                              backend or cfg.runtime.backend)
        if translator is not None:
            stages.lexicon.fill(translator.phrasebook)
            stages.translator = translator
            stages.versions["translator"] = version
            pipeline.worker.swap(startup=True, versions={"translator": version},
                                 translator=translator)
            log.info("translator ready", extra={"version": version})

    thread = threading.Thread(target=load, name="translator-load", daemon=True)
    thread.start()
    return thread


def shadow_hook_factory(cfg: Config, stages: Stages, metrics: Metrics, recorder=None):
    """challengers → the worker's after_result hook (a ShadowRunner, or None for none); used
    at build time and by the model watch when a SHADOW pointer changes."""
    names = {"detector": cfg.detector.model, "recognizer": cfg.models.recognizer,
             "translator": cfg.translator.model}

    def champions() -> dict:                   # read per record: swaps change the versions
        return {stage: ModelRef(names[stage], version)
                for stage, version in stages.versions.items() if stage in names}

    def make(challengers: list) -> ShadowRunner | None:
        if not challengers:
            return None
        return ShadowRunner(challengers, stages.crop_line, metrics, recorder=recorder,
                            champion_models=champions)

    return make


def build_pipeline(cfg: Config, stages: Stages, source: FrameSource | None = None, show=None,
                   metrics: Metrics | None = None, recorder=None) -> Pipeline:
    """`recorder`: a telemetry Recorder that also gets metrics, predictions, frame quality."""
    set_opencv_threads(cfg)
    metrics = metrics or Metrics(forward=recorder)
    source = source or parse_source(cfg.source.uri, fps=cfg.source.fps,
                                    realtime=cfg.source.realtime,
                                    image_dwell_s=cfg.source.image_dwell_s)
    capture = Capture(source, metrics, max_backoff_s=cfg.source.max_backoff_s)
    p = cfg.pipeline
    budgets = Budgets(recognition_ms=p.recognition_budget_ms,
                      translate_ms=cfg.translator.budget_ms, max_regions=p.max_regions,
                      min_confidence=cfg.recognizer.min_confidence)
    hooks = {}
    if recorder is not None:
        telemetry = PipelineTelemetry(recorder, stages.versions,
                                      {"detector": cfg.detector.model,
                                       "recognizer": cfg.models.recognizer,
                                       "translator": cfg.translator.model})
        hooks = {"on_result": telemetry, "on_frame": telemetry.frame}
    hooks["after_result"] = shadow_hook_factory(cfg, stages, metrics, recorder)(stages.shadows)
    worker = RecognitionWorker(stages.detector, stages.recognizer, stages.crop_line, metrics,
                               budgets, translator=stages.translator, **hooks)
    worker.versions = dict(stages.versions)     # what runs now; each swap updates it
    settings = FramePathSettings(frame_budget_ms=p.frame_budget_ms, region_ttl_s=p.region_ttl_s,
                                 match_iou=p.match_iou, hud=p.hud,
                                 rate=RateSettings.from_config(cfg.recognition))
    pipeline = Pipeline(capture, worker, metrics, settings,
                        tracker=MotionTracker(scale=p.tracker_scale), show=show)
    pipeline.speech = build_speaker(cfg, metrics)     # issue 17; None when speech is off
    return pipeline


def start_model_watch(cfg: Config, pipeline: Pipeline, stages: Stages, recorder=None
                      ) -> ModelWatch | None:
    """Watch the stages of a built pipeline (those not pinned to a version in the config) and
    their SHADOW pointers; keeps `stages` current so a rebuilt pipeline starts on the new
    models. None when [updates] is off."""
    if not cfg.updates.enabled:
        return None
    backend = stages.recognizer.backend
    loaders = stage_loaders(cfg, backend, stages.lexicon)
    watched = [Watched(stage, loader.name, loader.load, stages.versions[stage],
                       getattr(stages, stage))
               for stage, loader in loaders.items()
               if not loader.pinned and stage in stages.versions]

    def keep_current(item: Watched) -> None:
        setattr(stages, item.stage, item.instance)
        stages.versions[item.stage] = item.version
        if item.stage == "translator":          # the recognizers read with its phrasebook
            stages.lexicon.fill(item.instance.phrasebook)

    shadows = ShadowFollow(loaders, shadow_hook_factory(cfg, stages, pipeline.metrics, recorder),
                           stages.shadows)
    return ModelWatch(ModelStore.for_config(cfg), pipeline.worker, pipeline.metrics,
                      watched, HealthSettings.from_config(cfg.updates), backend,
                      cfg.updates.watch_interval_s, recorder, keep_current, shadows).start()
