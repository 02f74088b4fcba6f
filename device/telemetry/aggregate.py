"""Per-second metric aggregates and per-minute data-quality aggregates.

The frame path calls `count`/`observe`/`gauge` (a lock and a dict update each); a window that
has ended is turned into one record body the next time anyone touches it or the writer thread
rolls it. Windows are on the monotonic clock.
"""

from __future__ import annotations

import threading
from typing import Any

from device.metrics import percentiles

CONFIDENCE_BINS = 10


def summarize(values: list[float]) -> dict[str, float]:
    """n, p50, p95 (the one percentile definition: device.metrics.percentiles) and max."""
    return {"n": len(values), **percentiles(values, (50, 95)), "max": round(max(values), 3)}


class _Window:
    """Fixed monotonic windows: a subclass collects under `_lock` after `_advance`, says
    whether it holds anything (`_has_data`), turns it into a body and starts empty again."""

    def __init__(self, period_s: float):
        self.period_ns = int(period_s * 1e9)
        self._lock = threading.Lock()
        self._start: int | None = None
        self._ready: list[tuple[int, dict[str, Any]]] = []
        self._reset()

    def roll(self, mono_ns: int, force: bool = False) -> list[tuple[int, dict[str, Any]]]:
        """Finished windows as (window start mono_ns, body); `force` ends the current one."""
        with self._lock:
            self._advance(mono_ns, force)
            ready, self._ready = self._ready, []
        return ready

    def _advance(self, mono_ns: int, force: bool = False) -> None:
        if self._start is None:
            self._start = mono_ns - mono_ns % self.period_ns
            return
        if force or mono_ns >= self._start + self.period_ns:
            if self._has_data():
                self._ready.append((self._start, self._body()))
            self._reset()
            self._start = mono_ns - mono_ns % self.period_ns

    def _reset(self) -> None:
        raise NotImplementedError

    def _has_data(self) -> bool:
        raise NotImplementedError

    def _body(self) -> dict[str, Any]:
        raise NotImplementedError


class MetricWindow(_Window):
    """Counters, observed values (p50/p95/max) and gauges over fixed monotonic windows."""

    def __init__(self, period_s: float = 1.0):
        super().__init__(period_s)

    def _reset(self) -> None:
        self._counts: dict[str, int] = {}
        self._samples: dict[str, list[float]] = {}
        self._gauges: dict[str, float] = {}

    def _has_data(self) -> bool:
        return bool(self._counts or self._samples or self._gauges)

    def count(self, name: str, n: int, mono_ns: int) -> None:
        with self._lock:
            self._advance(mono_ns)
            self._counts[name] = self._counts.get(name, 0) + n

    def observe(self, name: str, value: float, mono_ns: int) -> None:
        with self._lock:
            self._advance(mono_ns)
            self._samples.setdefault(name, []).append(float(value))

    def gauge(self, name: str, value: float, mono_ns: int) -> None:
        with self._lock:
            self._advance(mono_ns)
            self._gauges[name] = value

    def _body(self) -> dict[str, Any]:
        return {"window_s": self.period_ns / 1e9, "counts": dict(self._counts),
                "stats": {name: summarize(v) for name, v in self._samples.items() if v},
                "gauges": dict(self._gauges)}


class QualityWindow(_Window):
    """Per-frame image statistics and recognizer confidences, summarized per window (drift)."""

    IMAGE_STATS = ("brightness", "contrast", "blur")

    def __init__(self, period_s: float = 60.0):
        super().__init__(period_s)

    def _reset(self) -> None:
        self._image: dict[str, list[float]] = {k: [] for k in self.IMAGE_STATS}
        self._confidence: list[float] = []

    def _has_data(self) -> bool:
        return bool(self._confidence or any(self._image.values()))

    def frame(self, brightness: float, contrast: float, blur: float, mono_ns: int) -> None:
        with self._lock:
            self._advance(mono_ns)
            for name, value in zip(self.IMAGE_STATS, (brightness, contrast, blur)):
                self._image[name].append(float(value))

    def confidence(self, value: float, mono_ns: int) -> None:
        with self._lock:
            self._advance(mono_ns)
            self._confidence.append(float(value))

    def _body(self) -> dict[str, Any]:
        image = {}
        for name, values in self._image.items():
            if values:
                image[name] = {"n": len(values), "mean": round(sum(values) / len(values), 4),
                               **percentiles(values, (5, 50, 95), digits=4)}
        body: dict[str, Any] = {"window_s": self.period_ns / 1e9, "image": image}
        if self._confidence:
            hist = [0] * CONFIDENCE_BINS
            for c in self._confidence:
                hist[min(CONFIDENCE_BINS - 1, max(0, int(c * CONFIDENCE_BINS)))] += 1
            values = self._confidence
            body["confidence"] = {"n": len(values),
                                  "mean": round(sum(values) / len(values), 4),
                                  **percentiles(values, (50,), digits=4), "hist": hist}
        return body
