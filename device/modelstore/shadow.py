"""Shadow mode: challenger models that redo the champion's work in idle time only.

A version installed as a challenger is named by `models/<name>/SHADOW` (an atomic pointer, like
ACTIVE) and never shown to the wearer. Any of the three stages can have one:

  * detector: finds the regions of the same frame again; a pair per frame, agreement when
    every region matches one of the champion's one-to-one at IoU >= 0.5 (F1 = 1);
  * recognizer: reads the champion's line crops again; a pair per line, agreement on exact text;
  * translator: translates the champion's recognized lines again; a pair per translated line,
    agreement on the exact text shown.

After the recognition worker has published a result within its deadline, `ShadowRunner` does
that work one unit (frame or line) at a time, and only while

  * the frame's recognition deadline still leaves room for one more unit, and
  * no newer frame is waiting in the worker's inbox (the next primary run is never delayed by
    more than the one unit already under way).

Units it cannot do in time are counted as `shadow_skipped`. Pairs go to the metrics
(`shadow_pairs`, `shadow_agree`, `shadow_skipped`, `shadow_errors` counters; the latencies
`shadow.detect`, `shadow.recognize`, `shadow.translate` in ms, which the telemetry recorder
aggregates per second) and, with a recorder, one prediction record per pair carrying a
`shadow` object. A new or cleared SHADOW pointer is followed live by the model watch.
Nothing here imports cloud_sync.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from device.errors import EdgelensError
from device.metrics import Ema, Metrics, time_calls
from device.modelstore.pointers import checked, shadow_version
from device.modelstore.store import ModelStore
from device.geometry import match_polygons, regions_to_read
from device.stages.lexicon import Lexicon
from device.stages.loaders import stage_loaders
from device.stages.text_line import LINE_HEIGHT
from device.telemetry.records import Prediction

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Challenger:
    """A loaded challenger and where it came from; `model` is a Detector, Recognizer or
    Translator, by `stage`."""
    stage: str
    name: str
    version: str
    model: Any


# the challenger's latency per unit, in ms, by stage
SHADOW_LATENCY = {"detector": "shadow.detect", "recognizer": "shadow.recognize",
                  "translator": "shadow.translate"}
_WARM_UP_TEXT = ("Zugang nur mit Fahrkarte", "Bitte nicht rauchen")


class ShadowRunner:
    """`after_result` hook of the recognition worker: redoes the published result's work with
    each challenger, in idle time only. Runs on the recognition thread."""

    def __init__(self, challengers: list[Challenger], crop_line: Callable, metrics: Metrics, *,
                 recorder: Any = None, champion_models: Callable[[], dict] | None = None,
                 margin_ms: float = 2.0, warm_up: bool = True):
        self.challengers = list(challengers)
        self.crop_line, self.metrics, self.recorder = crop_line, metrics, recorder
        self.champion_models = champion_models or dict
        self.margin_s = margin_ms / 1000.0
        # running estimate of one unit per challenger (EMA), first taken from a timed warm-up
        # so that a slow challenger is skipped from the start rather than learnt the hard way
        self._unit_ms = {c.stage: Ema(self._time_warm_up(c) if warm_up else 5.0)
                         for c in self.challengers}

    @staticmethod
    def _time_warm_up(c: Challenger) -> float:
        if c.stage == "detector":
            def unit(_):
                c.model.detect(np.full((360, 640, 3), 255, np.uint8))
        elif c.stage == "translator":
            def unit(i):
                c.model.translate(_WARM_UP_TEXT[i])     # two texts: the second is no cache hit
        else:
            blank = np.full((LINE_HEIGHT, 4 * LINE_HEIGHT), 255, np.uint8)
            blank[LINE_HEIGHT // 3: 2 * LINE_HEIGHT // 3, LINE_HEIGHT: 3 * LINE_HEIGHT] = 0

            def unit(_):
                c.model.read(blank)
        unit(0)                                        # allocates the interpreter
        return time_calls(unit, [1], warmup=0)[0]

    def __call__(self, worker: Any, frame: Any, result: Any, deadline: float) -> None:
        for c in self.challengers:
            if c.stage == "detector":
                self._detector(c, worker, frame, result, deadline)
            elif c.stage == "recognizer":
                self._per_line(c, worker, result, deadline, result.lines,
                               lambda line: self._recognize(c, frame, line))
            else:
                lines = [line for line in result.lines if line.via != "ocr"]
                self._per_line(c, worker, result, deadline, lines,
                               lambda line: self._translate(c, line))

    def _no_time(self, c: Challenger, worker: Any, deadline: float) -> bool:
        return worker.inbox.waiting() or \
            time.perf_counter() + self._unit_ms[c.stage].value / 1000 + self.margin_s > deadline

    def _timed(self, c: Challenger, work: Callable[[], Any]) -> tuple[Any, float] | None:
        t0 = time.perf_counter()
        try:
            out = work()
        except Exception:   # a failing challenger must not harm the primary path
            self.metrics.count("shadow_errors")
            log.exception("shadow failed", extra={"stage": c.stage, "version": c.version})
            return None
        ms = (time.perf_counter() - t0) * 1000
        self._unit_ms[c.stage].add(ms)
        self.metrics.observe(SHADOW_LATENCY[c.stage], ms)
        return out, ms

    def _pair(self, agree: bool) -> None:
        self.metrics.count("shadow_pairs")
        if agree:
            self.metrics.count("shadow_agree")

    def _per_line(self, c: Challenger, worker: Any, result: Any, deadline: float,
                  lines: list, unit: Callable[[Any], tuple[bool, dict, Any] | None]) -> None:
        for i, line in enumerate(lines):
            if self._no_time(c, worker, deadline):
                self.metrics.count("shadow_skipped", len(lines) - i)
                return
            done = unit(line)
            if done is None:
                return
            agree, shadow, prediction_fields = done
            self._pair(agree)
            if self.recorder is not None:
                self._record(c, result, shadow, line=line, **prediction_fields)

    def _recognize(self, c: Challenger, frame: Any, line: Any):
        timed = self._timed(c, lambda: c.model.read(self.crop_line(frame.image, line.polygon)))
        if timed is None:
            return None
        reading, ms = timed
        agree = reading.text == line.text
        return agree, {"text": reading.text, "confidence": reading.confidence, "agree": agree,
                       "latency_ms": round(ms, 3)}, {}

    def _translate(self, c: Challenger, line: Any):
        timed = self._timed(c, lambda: c.model.translate(line.text,
                                                         ocr_confidence=line.confidence))
        if timed is None:
            return None
        translation, ms = timed
        shown = translation.translation or line.text
        agree = shown == line.shown_text
        return agree, {"text": shown, "via": translation.via, "agree": agree,
                       "latency_ms": round(ms, 3)}, {"translation": line.shown_text,
                                                     "translation_source": line.via}

    def _detector(self, c: Challenger, worker: Any, frame: Any, result: Any,
                  deadline: float) -> None:
        if self._no_time(c, worker, deadline):
            self.metrics.count("shadow_skipped")
            return
        timed = self._timed(c, lambda: c.model.detect(frame.image))
        if timed is None:
            return
        regions, ms = timed
        height, width = frame.image.shape[:2]
        kept, _, _ = regions_to_read(regions, width, height, worker.budgets.max_regions)
        theirs = [r.polygon for r in kept]
        ours = list(result.regions)
        matched = len(match_polygons(ours, theirs))
        f1 = 1.0 if not ours and not theirs else 2 * matched / (len(ours) + len(theirs))
        agree = matched == len(ours) == len(theirs)
        self._pair(agree)
        if self.recorder is not None:
            self._record(c, result, {"regions": len(theirs), "champion_regions": len(ours),
                                     "matched": matched, "f1": round(f1, 4), "agree": agree,
                                     "latency_ms": round(ms, 3)})

    def _record(self, c: Challenger, result: Any, shadow: dict, line: Any = None,
                **fields: Any) -> None:
        region, text, confidence = None, "", 0.0
        if line is not None:
            x, y = line.polygon.min(axis=0)
            w, h = line.polygon.max(axis=0) - line.polygon.min(axis=0)
            region, text, confidence = (int(x), int(y), int(w), int(h)), line.text, \
                line.confidence
        self.recorder.prediction(Prediction(
            text=text, confidence=confidence, models=self.champion_models(), region=region,
            latency_ms={k: round(v, 2) for k, v in result.stage_ms.items()},
            shadow={"stage": c.stage, "name": c.name, "version": c.version, **shadow},
            **fields))


def load_challenger(stage: str, loader: Any, store: ModelStore) -> Challenger | None:
    """The challenger of one stage named by its SHADOW pointer, checked and loaded
    (`loader`: a device.stages.loaders.StageLoader); None when there is none or it cannot be
    loaded (logged: shadow mode must never stop the device)."""
    try:
        version = shadow_version(store, loader.name)
        if version is None:
            return None
        model = loader.load(checked(store.get(loader.name, version)))
    except (EdgelensError, ValueError, RuntimeError, OSError) as exc:
        log.warning("shadow unavailable; running without it",
                    extra={"stage": stage, "error": str(exc)})
        return None
    log.info("shadow loaded",
             extra={"stage": stage, "model": loader.name, "version": version})
    return Challenger(stage, loader.name, version, model)


def load_challengers(cfg: Any, store: ModelStore, backend: str,
                     lexicon: Lexicon | None = None) -> list[Challenger]:
    """Every stage's challenger that its SHADOW pointer names (a recognizer reading with the
    champion's `lexicon`, so that only the models differ)."""
    found = []
    for stage, loader in stage_loaders(cfg, backend, lexicon).items():
        challenger = load_challenger(stage, loader, store)
        if challenger is not None:
            found.append(challenger)
    return found
