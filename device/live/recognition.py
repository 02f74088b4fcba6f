"""The recognition path: on the freshest frame, detect → recognize → translate inside a budget.

Runs in its own thread. A frame already older than its budget is not started; a stage that
would overrun is degraded (fewer regions, no translation) and counted; a result finished after
the deadline is discarded, not shown.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from device.live.capture import Frame, LatestSlot
from device.geometry import regions_to_read
from device.metrics import Ema, Metrics
from device.live.overlay import sample_colours
from device.live.text_blocks import Block, Line, group

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecognizedLine:
    polygon: np.ndarray  # in the coordinates of the frame it was found on
    text: str
    confidence: float
    shown_text: str
    via: str  # "phrasebook"/"model"/"gloss"/"cache"/"passthrough" from the translator, or "ocr"
    foreground: tuple[int, int, int]
    background: tuple[int, int, int]
    uncertain: bool = False   # the translator marked it uncertain (a gloss, an unsure model)


@dataclass(frozen=True)
class RecognitionResult:
    frame_index: int
    captured: float
    finished: float
    lines: tuple[RecognizedLine, ...]
    stage_ms: dict
    regions: tuple[np.ndarray, ...] = ()   # every region the run tried to read (largest first)
    versions: dict = field(default_factory=dict)  # stage → model version that made this result
    complete: bool = True   # every region whole in the frame was read and translated in time
    unread: int = 0         # regions read below min_confidence (text or clutter, unknown)


@dataclass
class Budgets:
    recognition_ms: float = 200.0
    translate_ms: float = 40.0
    max_regions: int = 6
    min_confidence: float = 0.5     # [recognizer] min_confidence


class RecognitionWorker:
    def __init__(self, detector: Any, recognizer: Any, crop_line: Callable, metrics: Metrics,
                 budgets: Budgets, translator: Any | None = None,
                 on_result: Callable[[RecognitionResult], None] | None = None,
                 on_frame: Callable[[np.ndarray], None] | None = None,
                 after_result: Callable[..., None] | None = None):
        self.detector, self.recognizer, self.crop_line = detector, recognizer, crop_line
        self.translator, self.metrics, self.budgets = translator, metrics, budgets
        self.inbox = LatestSlot()
        self.results: queue.SimpleQueue[RecognitionResult] = queue.SimpleQueue()
        self.on_result, self.on_frame = on_result, on_frame
        # after_result(worker, frame, result, deadline): idle-time work once a result was
        # published in time (shadow mode); it must check the deadline and inbox itself
        self.after_result = after_result
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recognition", daemon=True)
        self._recognize_ms = Ema(3.0)
        self._translate_ms = Ema(5.0)
        self.busy = threading.Event()
        self._pending: dict[str, Any] = {}
        self._pending_versions: dict[str, str] = {}
        self.versions: dict[str, str] = {}      # stage → version of the stage now running
        self._startup = False
        self._swap_lock = threading.Lock()
        self.swapped = threading.Event()

    def swap(self, startup: bool = False, versions: dict | None = None, **stages: Any) -> None:
        """Replace detector/recognizer/translator (already loaded and warmed), or the
        `after_result` hook (shadow mode's challengers), at the next run boundary: the one way
        anything the worker runs is changed from another thread. The frame path never waits
        for this. `startup`: the first installation of a stage loaded in the background
        (logged at DEBUG: nothing was swapped out)."""
        unknown = set(stages) - {"detector", "recognizer", "translator", "after_result"}
        if unknown:
            raise ValueError(f"cannot swap {sorted(unknown)}")
        with self._swap_lock:
            self._pending.update(stages)
            self._pending_versions.update(versions or {})
            if set(stages) - {"after_result"}:
                self._startup = startup
            self.swapped.clear()

    def _apply_swap(self) -> None:
        with self._swap_lock:
            pending, self._pending = self._pending, {}
            versions, self._pending_versions = self._pending_versions, {}
            startup, self._startup = self._startup, False
        # the versions change with the stages, at the same run boundary
        self.versions = {**self.versions, **versions}
        if pending:
            for name, stage in pending.items():
                setattr(self, name, stage)
            models = sorted(set(pending) - {"after_result"})
            if models and startup:
                log.debug("stages installed", extra={"stages": models})
            elif models:
                self.metrics.count("model_swaps")
                log.info("models swapped", extra={"stages": models})
            self.swapped.set()

    def start(self) -> "RecognitionWorker":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.inbox.close()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            frame = self.inbox.take(timeout=0.1)
            if frame is None:
                continue
            self.busy.set()
            try:
                self._apply_swap()
                self.process(frame)
            except Exception:  # a per-frame failure must not end the path
                self.metrics.count("recognition_errors")
                log.exception("recognition failed on a frame", extra={"frame": frame.index})
            finally:
                self.busy.clear()

    def process(self, frame: Frame) -> RecognitionResult | None:
        """Detect → recognize → translate one frame inside its budget. None when the frame was
        already stale or the result finished after the deadline (both counted as misses)."""
        budget_s = self.budgets.recognition_ms / 1000.0
        deadline = frame.captured + budget_s
        start = time.perf_counter()
        if start >= deadline:
            self.metrics.count("recognition_discarded_stale")
            self.metrics.count("recognition_deadline_misses")
            return None
        self.metrics.count("recognition_runs_started")
        if self.on_frame is not None:
            self.on_frame(frame.image)
        stages: dict[str, float] = {}
        regions, over = self._detect_regions(frame, start, stages)
        read, unread, all_read = self._read_regions(frame, regions, deadline, stages)
        lines, all_translated = self._translate_blocks(frame, read, deadline, stages)
        complete = not over and all_read and all_translated
        return self._finish(frame, deadline, tuple(lines), stages, regions, complete, unread)

    def _detect_regions(self, frame: Frame, start: float, stages: dict[str, float]
                        ) -> tuple[list, int]:
        """The regions to read on this frame, and how many were over `max_regions`."""
        regions = self.detector.detect(frame.image)
        stages["detect"] = (time.perf_counter() - start) * 1000
        self.metrics.observe("stage.detect", stages["detect"])
        # Text cut by the frame edge reads as a different word ("GEÖFF"): leave it to the
        # tracker, which keeps showing what was read while the whole sign was in view.
        height, width = frame.image.shape[:2]
        regions, cut, over = regions_to_read(regions, width, height, self.budgets.max_regions)
        if cut:
            self.metrics.count("regions_cut_at_edge", cut)
        if over:
            self.metrics.count("regions_over_limit", over)
        return regions, over

    def _read_regions(self, frame: Frame, regions: list, deadline: float,
                      stages: dict[str, float]) -> tuple[list[tuple[Any, Any]], int, bool]:
        """(region, reading) of each line read above `min_confidence`, how many were read
        below it, and whether every region was tried before the deadline (less the time kept
        for translation)."""
        reserve_s = self.budgets.translate_ms / 1000.0 if self.translator else 0.0
        read: list[tuple[Any, Any]] = []
        unread, all_read = 0, True
        t_rec = time.perf_counter()
        for i, region in enumerate(regions):
            if time.perf_counter() + self._recognize_ms.value / 1000 > deadline - reserve_s:
                self.metrics.count("regions_skipped_deadline", len(regions) - i)
                self.metrics.count("recognition_degraded")
                all_read = False
                break
            t0 = time.perf_counter()
            crop = self.crop_line(frame.image, region.polygon)
            reading = self.recognizer.read(crop)
            self._recognize_ms.add((time.perf_counter() - t0) * 1000)
            if reading.text and reading.confidence >= self.budgets.min_confidence:
                read.append((region, reading))
            else:
                self.metrics.count("lines_low_confidence")
                unread += 1
        stages["recognize"] = (time.perf_counter() - t_rec) * 1000
        self.metrics.observe("stage.recognize", stages["recognize"])
        return read, unread, all_read

    def _translate_blocks(self, frame: Frame, read: list[tuple[Any, Any]], deadline: float,
                          stages: dict[str, float]) -> tuple[list[RecognizedLine], bool]:
        """The lines to show, one per text block, and whether every block was translated
        before the deadline (always True without a translator)."""
        # the lines of one sign ("Bitte nicht" / "rauchen") are translated as one text and
        # shown over the whole block; unrelated lines stay apart (device.live.text_blocks)
        blocks = group([Line(region.polygon, reading.text, reading.confidence,
                             *sample_colours(frame.image, region.polygon))
                        for region, reading in read])
        lines, all_translated = [], True
        t_tr = time.perf_counter()
        for block in blocks:
            shown, via, uncertain = block.text, "ocr", False
            if self.translator is not None:
                if time.perf_counter() + self._translate_ms.value / 1000 > deadline:
                    self.metrics.count("translations_skipped_deadline")
                    self.metrics.count("recognition_degraded")
                    all_translated = False
                else:
                    shown, via, uncertain = self._translate_one(block)
            first = block.lines[0]
            lines.append(RecognizedLine(block.polygon, block.text, block.confidence, shown,
                                        via, first.foreground, first.background, uncertain))
        if self.translator is not None:
            stages["translate"] = (time.perf_counter() - t_tr) * 1000
            self.metrics.observe("stage.translate", stages["translate"])
        return lines, all_translated

    def _translate_one(self, block: Block) -> tuple[str, str, bool]:
        """(text to show, via, uncertain) for one block; its OCR text when the translator
        gives none."""
        t0 = time.perf_counter()
        translation = self.translator.translate(block.text, ocr_confidence=block.confidence)
        self._translate_ms.add((time.perf_counter() - t0) * 1000)
        via = translation.via
        self.metrics.count(f"translate_via.{via}")
        return (translation.translation or block.text), via, translation.uncertain

    def _finish(self, frame: Frame, deadline: float, lines: tuple[RecognizedLine, ...],
                stages: dict[str, float], regions: list, complete: bool, unread: int
                ) -> RecognitionResult | None:
        """Publish the result when it finished in time (results queue, on_result, then the
        idle-time after_result); discard it when late."""
        finished = time.perf_counter()
        total_ms = (finished - frame.captured) * 1000
        self.metrics.observe("recognition_path", total_ms)
        self.metrics.count("recognition_runs_finished")
        if finished > deadline:
            self.metrics.count("recognition_discarded_late")
            self.metrics.count("recognition_deadline_misses")
            return None
        result = RecognitionResult(frame.index, frame.captured, finished, lines, stages,
                                   tuple(r.polygon for r in regions), dict(self.versions),
                                   complete, unread)
        self.results.put(result)
        if self.on_result is not None:
            self.on_result(result)
        after = self.after_result
        if after is not None:
            after(self, frame, result, deadline)
        return result
