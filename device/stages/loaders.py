"""How each pipeline stage is loaded from a model version.

Shared by start-up (`assembly.load_stages`: `build` only), the model watch (hot swap of a new
ACTIVE version) and shadow mode (a challenger named by SHADOW): stage → StageLoader(model name,
version pinned in the config, build, warm). `load` builds and warms the stage, so the first
frame after a swap does not pay for allocating it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from device.modelstore.store import ModelVersion
from device.stages.detector import Detector
from device.stages.lexicon import Lexicon
from device.stages.recognizer import Recognizer
from device.stages.translate.translator import Translator


def _nothing(stage: Any) -> None:
    return None


@dataclass(frozen=True)
class StageLoader:
    name: str                                  # model name in the store
    pinned: str                                # version fixed by the config ("" = follow ACTIVE)
    build: Callable[[ModelVersion], Any]
    warm: Callable[[Any], None] = _nothing

    def load(self, version: ModelVersion) -> Any:
        stage = self.build(version)
        self.warm(stage)
        return stage


def stage_loaders(cfg: Any, backend: str,
                  lexicon: Lexicon | None = None) -> dict[str, StageLoader]:
    """`lexicon`: the words every recognizer built here checks its readings against
    ([recognizer] lexicon_prior); None: words as read."""
    d = cfg.detector
    threads = cfg.runtime.num_threads

    def detector(version: ModelVersion) -> Any:
        return Detector.for_version(version, d, backend=backend, num_threads=threads)

    def recognizer(version: ModelVersion) -> Any:
        stage = Recognizer(version.artifact, backend=backend, num_threads=threads)
        stage.use_lexicon(lexicon, cfg.recognizer.lexicon_prior)
        return stage

    def translator(version: ModelVersion) -> Any:
        return Translator.from_config(cfg, backend=backend, version=version)

    return {
        "detector": StageLoader(d.model, d.version, detector, lambda stage: stage.detect(
            np.zeros((360, 640, 3), np.uint8))),
        "recognizer": StageLoader(cfg.models.recognizer, cfg.models.recognizer_version,
                                  recognizer),
        "translator": StageLoader(cfg.translator.model, cfg.translator.version, translator,
                                  lambda stage: stage.translate("Ausgang")),
    }
