"""How each swappable pipeline stage is loaded from a model version, ready to serve.

Shared by the model watch (hot swap of a new ACTIVE version) and shadow mode (a challenger
named by SHADOW): stage → StageLoader(model name, version pinned in the config, load). `load`
allocates and warms the stage, so the first real frame does not pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from device.model_store import ModelVersion


@dataclass(frozen=True)
class StageLoader:
    name: str                                  # model name in the store
    pinned: str                                # version fixed by the config ("" = follow ACTIVE)
    load: Callable[[ModelVersion], Any]


def stage_loaders(cfg: Any, backend: str) -> dict[str, StageLoader]:
    from device.detector import Detector, DetectorParams
    from device.recognizer import Recognizer
    from device.translate.translator import Translator
    d = cfg.detector
    params = DetectorParams(bin_threshold=d.bin_threshold, box_threshold=d.box_threshold,
                            unclip_ratio=d.unclip_ratio, min_area=d.min_area,
                            max_regions=d.max_regions)
    threads = cfg.runtime.num_threads

    def detector(version: ModelVersion) -> Any:
        loaded = Detector(version.artifact, backend=backend, num_threads=threads, params=params)
        loaded.detect(np.zeros((d.input_height, d.input_width, 3), np.uint8))
        return loaded

    def recognizer(version: ModelVersion) -> Any:
        return Recognizer(version.artifact, backend=backend, num_threads=threads)

    def translator(version: ModelVersion) -> Any:
        loaded = Translator.from_config(cfg, backend=backend, version=version)
        loaded.translate("Ausgang")
        return loaded

    return {
        "detector": StageLoader(d.model, d.version, detector),
        "recognizer": StageLoader(cfg.models.recognizer, cfg.models.recognizer_version,
                                  recognizer),
        "translator": StageLoader(cfg.translator.model, cfg.translator.version, translator),
    }
