"""Connect the live pipeline to the telemetry recorder: metrics, predictions, data quality."""

from __future__ import annotations

import cv2
import numpy as np

from device.live.recognition import RecognitionResult
from device.telemetry.records import ModelRef, Prediction


def frame_quality(image: np.ndarray) -> tuple[float, float, float]:
    """(brightness, contrast, sharpness) of a frame: mean and std of gray, Laplacian variance,
    on a 1/4-size copy (cheap enough for the recognition path, which samples frames)."""
    small = cv2.resize(image, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
    return (float(gray.mean()), float(gray.std()),
            float(cv2.Laplacian(gray, cv2.CV_32F).var()))


class PipelineTelemetry:
    """`on_result` for the recognition worker: one prediction record per shown line."""

    def __init__(self, recorder, versions: dict[str, str], names: dict[str, str]):
        self.recorder = recorder
        self.names = names
        self.models = {stage: ModelRef(names.get(stage, stage), version)
                       for stage, version in versions.items()}

    def models_of(self, result: RecognitionResult) -> dict:
        """The versions that produced this result (they change with every hot swap)."""
        if not result.versions:
            return self.models
        return {**self.models, **{stage: ModelRef(self.names.get(stage, stage), version)
                                  for stage, version in result.versions.items()}}

    def frame(self, image: np.ndarray) -> None:
        self.recorder.frame_quality(*frame_quality(image))

    def __call__(self, result: RecognitionResult) -> None:
        models = self.models_of(result)
        for line in result.lines:
            x, y = line.polygon.min(axis=0)
            w, h = line.polygon.max(axis=0) - line.polygon.min(axis=0)
            self.recorder.confidence(line.confidence)
            self.recorder.prediction(Prediction(
                text=line.text, confidence=line.confidence, models=models,
                region=(int(x), int(y), int(w), int(h)),
                translation=line.shown_text if line.via != "ocr" else None,
                translation_source=line.via if line.via != "ocr" else None,
                latency_ms={k: round(v, 2) for k, v in result.stage_ms.items()}))
