"""Text-line recognizer: one int8 CRNN/CTC model, one method that reads a crop."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.stages.charset import NUM_CLASSES
from device.stages.ctc import greedy_decode
from device.stages.lexicon import Lexicon, correct
from device.geometry import crop_line
from device.errors import InputError, ModelError
from device.runtime import TFLiteModel
from device.stages.text_line import prepare_line

MIN_LINE_HEIGHT, MAX_LINE_HEIGHT = 16, 96


@dataclass(frozen=True)
class LineReading:
    text: str
    confidence: float


class Recognizer:
    """Reads one upright text-line crop (gray, BGR or BGRA uint8) into text + confidence."""

    def __init__(self, model_path: str | Path, backend: str = "auto", num_threads: int = 1):
        self.model = TFLiteModel(model_path, backend=backend, num_threads=num_threads)
        spec = self.model.inputs[0]
        if (len(spec.shape) != 4 or spec.shape[3] != 1
                or not MIN_LINE_HEIGHT <= spec.shape[1] <= MAX_LINE_HEIGHT):
            raise ModelError(f"{model_path}: expected a [1, H, W, 1] gray line input with H in "
                             f"{MIN_LINE_HEIGHT}..{MAX_LINE_HEIGHT}, the model takes "
                             f"{list(spec.shape)}")
        self.line_height = int(spec.shape[1])
        """Crops are scaled to this height (32 for 1.x/2.x, 48 for 3.x), read from the model."""
        if self.model.outputs[0].shape[-1] != NUM_CLASSES:
            raise ModelError(f"{model_path}: expected {NUM_CLASSES} classes per timestep, the "
                             f"model gives {self.model.outputs[0].shape[-1]}; charset mismatch")
        self._lexicon: tuple[Lexicon, float] | None = None

    def use_lexicon(self, lexicon: Lexicon | None, prior: float) -> None:
        """From now on read unknown words as known ones where the frames allow it
        (`device.stages.lexicon.correct`, with the words `lexicon` holds then); None or a
        prior of 0: words as read. One assignment, so a reading in flight on another thread
        sees the old or the new."""
        self._lexicon = (lexicon, prior) if lexicon is not None and prior > 0 else None

    @property
    def backend(self) -> str:
        return self.model.backend

    def probabilities(self, crop: np.ndarray) -> np.ndarray:
        """Per-timestep class probabilities [T, NUM_CLASSES] for a crop."""
        try:
            line = prepare_line(crop, self.line_height)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        batch = line[np.newaxis, :, :, np.newaxis]
        out = next(iter(self.model.run_resized(batch).values()))
        return out.reshape(-1, NUM_CLASSES)

    def read(self, crop: np.ndarray) -> LineReading:
        """The text of a crop. A crop much taller than wide holds vertical or rotated text:
        it is also read turned a quarter both ways, and the most confident reading wins."""
        best = self._read_once(crop)
        crop = np.asarray(crop)
        if crop.ndim >= 2 and crop.shape[0] > 1.5 * crop.shape[1]:
            for turned in (np.rot90(crop, -1), np.rot90(crop, 1)):
                reading = self._read_once(np.ascontiguousarray(turned))
                if reading.confidence > best.confidence:
                    best = reading
        return best

    def _read_once(self, crop: np.ndarray) -> LineReading:
        probs = self.probabilities(crop)
        text, confidence, _ = greedy_decode(probs)
        lexicon = self._lexicon
        if lexicon is not None and text and not lexicon[0].empty:
            text = correct(probs, *lexicon)
        return LineReading(text=text.strip(), confidence=round(confidence, 4))


def read_regions(recognizer: Recognizer, image: np.ndarray, regions,
                 min_confidence: float, keep_empty: bool = False) -> list[tuple]:
    """(region, reading) for the detected regions of a whole image that read as text with at
    least `min_confidence` (pictograms, noise and unreadable text drop out); `keep_empty`
    also keeps the regions that read as nothing (`edgelens ocr --all`). A region too small
    to cut out is left out either way."""
    read = []
    for region in regions:
        try:
            reading = recognizer.read(crop_line(image, region.polygon))
        except InputError:
            continue
        if (reading.text or keep_empty) and reading.confidence >= min_confidence:
            read.append((region, reading))
    return read
