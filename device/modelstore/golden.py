"""Golden self-tests: each model version proves it behaves on a few inputs with known outputs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from device.errors import EdgelensError
from device.modelstore.store import ModelVersion
from device.stages.detector import Detector, params_for
from device.geometry import match_polygons
from device.stages.recognizer import Recognizer
from device.stages.translate.model import Seq2SeqModel
from device.stages.translate.tokenizer import Tokenizer
from device.stages.translate.translator import model_translate, tokenizer_path


@dataclass(frozen=True)
class GoldenResult:
    input: str
    expected: str
    got: str

    @property
    def passed(self) -> bool:
        return self.expected == self.got


def _recognizer_golden(version: ModelVersion, backend: str) -> list[GoldenResult]:
    recognizer = Recognizer(version.artifact, backend=backend, num_threads=1)
    results = []
    for case in version.manifest["golden"]:
        image = cv2.imread(str(version.directory / case["input"]), cv2.IMREAD_UNCHANGED)
        got = "<unreadable image>" if image is None else recognizer.read(image).text
        results.append(GoldenResult(case["input"], case["expected"], got))
    return results


def _detector_golden(version: ModelVersion, backend: str) -> list[GoldenResult]:
    """For each golden scene: how many ground-truth lines the model finds at IoU >= 0.5."""
    detector = Detector(version.artifact, backend=backend, num_threads=1,
                        params=params_for(version.manifest))
    results = []
    for case in version.manifest["golden"]:
        image = cv2.imread(str(version.directory / case["input"]), cv2.IMREAD_COLOR)
        truth_path = version.directory / case["ground_truth"]
        truth = [np.float32(p) for p in json.loads(truth_path.read_text())["polygons"]]
        if image is None:
            got = "<unreadable image>"
        else:
            found = [r.polygon for r in detector.detect(image)]
            got = str(len(match_polygons(truth, found)))
        results.append(GoldenResult(case["input"], case["expected"], got))
    return results


def _translator_golden(version: ModelVersion, backend: str) -> list[GoldenResult]:
    """The model alone (no phrasebook, no cache) must give the manifest's expected English for
    each German input, greedy, on the given backend."""
    model = Seq2SeqModel(version.artifact, backend=backend, num_threads=1)
    tokenizer = Tokenizer(tokenizer_path(version))
    return [GoldenResult(case["input"], case["expected"],
                         model_translate(model, tokenizer, case["input"])[0])
            for case in version.manifest["golden"]]


_RUNNERS: dict[str, Callable[[ModelVersion, str], list[GoldenResult]]] = {
    "text-line-recognition": _recognizer_golden,
    "text-detection": _detector_golden,
    "translation-de-en": _translator_golden,
}


def run_golden(version: ModelVersion, backend: str) -> list[GoldenResult]:
    runner = _RUNNERS.get(version.task)
    if runner is None:
        raise EdgelensError(f"{version.name} {version.version}: no golden runner for task "
                            f"{version.task!r}")
    return runner(version, backend)
