"""Shadow mode: a challenger recognizer that reads the champion's lines in idle time only.

A version installed as a challenger is named by `models/<name>/SHADOW` (an atomic pointer, like
ACTIVE) and never shown to the wearer. After the recognition worker has published a result
within its deadline, `ShadowRunner` re-reads the same line crops with the challenger, one line
at a time, and only while

  * the frame's recognition deadline still leaves room for one more challenger read, and
  * no newer frame is waiting in the worker's inbox (the next primary run is never delayed by
    more than the one challenger read already under way).

Lines it cannot read in time are counted as `shadow_skipped`. Each read line is a pair:
champion text/confidence vs challenger text/confidence, agreement (exact text match) and the
challenger's latency. Pairs go to the metrics (`shadow_pairs`, `shadow_agree`, `shadow_skipped`
counters, the `shadow.recognize` latency in ms, which the telemetry recorder aggregates per
second) and, with a recorder, one prediction record per pair carrying a `shadow` object.

Only the recognizer stage is shadowed; a challenger detector or translator is not supported.
Nothing here imports cloud_sync.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from device.errors import ModelStoreError
from device.metrics import Metrics
from device.model_install import write_atomic
from device.model_store import ModelStore
from device.telemetry.recorder import Prediction
from device.text_line import LINE_HEIGHT

log = logging.getLogger(__name__)

SHADOW = "SHADOW"
SHADOWED_STAGES = ("recognizer",)


def set_shadow(store: ModelStore, name: str, version: str) -> None:
    """Name an installed version as the challenger of `name` (atomic pointer write)."""
    if version not in store.versions(name):
        raise ModelStoreError(f"cannot shadow {name} {version}: not in the store")
    write_atomic(store.root / name / SHADOW, f"{version}\n".encode())


def clear_shadow(store: ModelStore, name: str) -> None:
    """Stop shadowing `name` (a missing pointer is fine)."""
    (store.root / name / SHADOW).unlink(missing_ok=True)


def shadow_version(store: ModelStore, name: str) -> str | None:
    """The challenger version of `name`, or None when there is none (no pointer, or the pointer
    names the active version). A pointer to a version not in the store is an error."""
    pointer = store.root / name / SHADOW
    if not pointer.is_file():
        return None
    chosen = pointer.read_text(encoding="utf-8").strip()
    if chosen not in store.versions(name):
        raise ModelStoreError(f"{pointer} names version {chosen!r}, which is not in the store "
                              f"(have {', '.join(store.versions(name))})")
    return None if chosen == store.active_version(name) else chosen


@dataclass(frozen=True)
class Challenger:
    """A loaded challenger recognizer and where it came from."""
    stage: str
    name: str
    version: str
    recognizer: Any


class ShadowRunner:
    """`after_result` hook of the recognition worker: reads the published lines again with the
    challenger, in idle time only. Runs on the recognition thread."""

    def __init__(self, challenger: Challenger, crop_line: Callable, metrics: Metrics, *,
                 recorder: Any = None, champion_models: dict | None = None,
                 margin_ms: float = 2.0, warm_up: bool = True):
        self.challenger = challenger
        self.crop_line, self.metrics, self.recorder = crop_line, metrics, recorder
        self.champion_models = champion_models or {}
        self.margin_s = margin_ms / 1000.0
        # running estimate of one challenger read (EMA), first taken from a timed warm-up read
        # so that a slow challenger is skipped from the start rather than learnt the hard way
        self._read_ms = self._time_warm_up() if warm_up else 5.0

    def _time_warm_up(self) -> float:
        blank = np.full((LINE_HEIGHT, 4 * LINE_HEIGHT), 255, np.uint8)
        blank[LINE_HEIGHT // 3: 2 * LINE_HEIGHT // 3, LINE_HEIGHT: 3 * LINE_HEIGHT] = 0
        self.challenger.recognizer.read(blank)   # allocates the interpreter
        t0 = time.perf_counter()
        self.challenger.recognizer.read(blank)
        return (time.perf_counter() - t0) * 1000

    @property
    def read_estimate_ms(self) -> float:
        return self._read_ms

    def __call__(self, worker: Any, frame: Any, result: Any, deadline: float) -> None:
        for i, line in enumerate(result.lines):
            now = time.perf_counter()
            if worker.inbox.waiting() or now + self._read_ms / 1000 + self.margin_s > deadline:
                self.metrics.count("shadow_skipped", len(result.lines) - i)
                return
            t0 = time.perf_counter()
            try:
                crop = self.crop_line(frame.image, line.polygon)
                reading = self.challenger.recognizer.read(crop)
            except Exception:   # a failing challenger must not harm the primary path
                self.metrics.count("shadow_errors")
                log.exception("shadow recognizer failed on a line",
                              extra={"version": self.challenger.version})
                return
            ms = (time.perf_counter() - t0) * 1000
            self._read_ms = 0.8 * self._read_ms + 0.2 * ms
            agree = reading.text == line.text
            self.metrics.count("shadow_pairs")
            if agree:
                self.metrics.count("shadow_agree")
            self.metrics.observe("shadow.recognize", ms)
            if self.recorder is not None:
                self._record(line, reading, agree, ms, result)

    def _record(self, line: Any, reading: Any, agree: bool, ms: float, result: Any) -> None:
        x, y = line.polygon.min(axis=0)
        w, h = line.polygon.max(axis=0) - line.polygon.min(axis=0)
        self.recorder.prediction(Prediction(
            text=line.text, confidence=line.confidence, models=self.champion_models,
            region=(int(x), int(y), int(w), int(h)),
            latency_ms={k: round(v, 2) for k, v in result.stage_ms.items()},
            shadow={"stage": self.challenger.stage, "name": self.challenger.name,
                    "version": self.challenger.version, "text": reading.text,
                    "confidence": reading.confidence, "agree": agree,
                    "latency_ms": round(ms, 3)}))


def load_challenger(cfg: Any, store: ModelStore, backend: str) -> Challenger | None:
    """The recognizer named by its SHADOW pointer, checked and loaded; None when there is none
    or it cannot be loaded (logged: shadow mode must never stop the device)."""
    from device.assembly import checked
    from device.errors import EdgelensError
    from device.recognizer import Recognizer
    name = cfg.models.recognizer
    try:
        version = shadow_version(store, name)
        if version is None:
            return None
        model = checked(store.get(name, version))
        recognizer = Recognizer(model.artifact, backend=backend,
                                num_threads=cfg.runtime.num_threads)
    except (EdgelensError, ValueError, RuntimeError, OSError) as exc:
        log.warning("shadow recognizer unavailable; running without it",
                    extra={"error": str(exc)})
        return None
    log.info("shadow recognizer loaded", extra={"model": name, "version": version})
    return Challenger("recognizer", name, version, recognizer)
