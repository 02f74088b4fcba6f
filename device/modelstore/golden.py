"""Golden self-tests: each model version proves it behaves on a few inputs with known outputs."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

import cv2

from device.errors import EdgelensError
from device.modelstore.store import ModelVersion


@dataclass(frozen=True)
class GoldenResult:
    input: str
    expected: str
    got: str

    @property
    def passed(self) -> bool:
        return self.expected == self.got


def _recognizer_golden(version: ModelVersion, backend: str) -> list[GoldenResult]:
    from device.stages.recognizer import Recognizer
    recognizer = Recognizer(version.artifact, backend=backend, num_threads=1)
    results = []
    for case in version.manifest["golden"]:
        image = cv2.imread(str(version.directory / case["input"]), cv2.IMREAD_UNCHANGED)
        got = "<unreadable image>" if image is None else recognizer.read(image).text
        results.append(GoldenResult(case["input"], case["expected"], got))
    return results


# task → "module:function" for tasks whose runner lives beside its stage.
_RUNNERS: dict[str, Callable | str] = {
    "text-line-recognition": _recognizer_golden,
    "text-detection": "device.stages.detector:run_golden",
    "translation-de-en": "device.stages.translate.golden:run_golden",
}


def run_golden(version: ModelVersion, backend: str) -> list[GoldenResult]:
    runner = _RUNNERS.get(version.task)
    if runner is None:
        raise EdgelensError(f"{version.name} {version.version}: no golden runner for task "
                            f"{version.task!r}")
    if isinstance(runner, str):
        module, function = runner.split(":")
        runner = getattr(importlib.import_module(module), function)
    return runner(version, backend)
