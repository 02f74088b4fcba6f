"""Counters and latency histograms for the pipeline, safe to update from several threads; the
one percentile definition and the one warm-up-and-time loop that every benchmark measures with."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Callable, Sequence

import numpy as np


def percentiles(values, qs=(50, 95), digits: int = 3) -> dict[str, float | None]:
    """{"p50": …, "p95": …} of `values`, rounded; None for each when there are none. The one
    percentile definition of the product (linear interpolation between closest ranks, numpy's
    default): the HUD, telemetry, the fleet and every benchmark report the same p95."""
    values = np.asarray(list(values), float)
    if values.size == 0:
        return {f"p{q}": None for q in qs}
    return {f"p{q}": round(float(v), digits) for q, v in zip(qs, np.percentile(values, qs))}


def time_calls(call: Callable[[Any], Any], inputs: Sequence, runs: int | None = None,
               warmup: int = 1, results: list | None = None) -> list[float]:
    """Wall time in ms of each of `runs` calls `call(inputs[i % len(inputs)])` (default: one
    pass over `inputs`), after `warmup` untimed calls on the first inputs (the first call of a
    model allocates its interpreter, or one per input width). The one warm-up-and-time loop of
    the benchmarks, calibration and packaging: they report `percentiles` of these samples.
    `results`, when given, gets what each timed call returned (never a warm-up's)."""
    if len(inputs) == 0:
        raise ValueError("time_calls needs at least one input")
    for i in range(warmup):
        call(inputs[i % len(inputs)])
    samples = []
    for i in range(len(inputs) if runs is None else runs):
        item = inputs[i % len(inputs)]
        start = time.perf_counter_ns()
        out = call(item)
        samples.append((time.perf_counter_ns() - start) / 1e6)
        if results is not None:
            results.append(out)
    return samples


class LatencyHistogram:
    """Keeps the most recent `capacity` samples (ms) and the running count/max."""

    def __init__(self, capacity: int = 20_000):
        self._samples: deque[float] = deque(maxlen=capacity)
        self.count = 0
        self.max = 0.0

    def add(self, ms: float) -> None:
        self._samples.append(ms)
        self.count += 1
        self.max = max(self.max, ms)

    def percentiles(self, qs=(50, 95, 99)) -> dict[str, float]:
        if not self._samples:
            return {f"p{q}": 0.0 for q in qs}
        return percentiles(self._samples, qs)

    def samples(self) -> np.ndarray:
        return np.fromiter(self._samples, float)


class Metrics:
    """Named counters and histograms. Names are free-form (`frames_dropped`, `stage.detect`)."""

    def __init__(self, forward=None):
        """`forward`: an object with count(name, n) and observe(name, value) that also gets
        every update (the telemetry recorder, which aggregates per second)."""
        self._lock = threading.Lock()
        self._counters: dict[str, int] = {}
        self._histograms: dict[str, LatencyHistogram] = {}
        self.forward = forward

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counters[name] = self._counters.get(name, 0) + n
        if self.forward is not None:
            self.forward.count(name, n)

    def observe(self, name: str, ms: float) -> None:
        with self._lock:
            histogram = self._histograms.get(name)
            if histogram is None:
                histogram = self._histograms[name] = LatencyHistogram()
            histogram.add(ms)
        if self.forward is not None:
            self.forward.observe(name, ms)

    def counter(self, name: str) -> int:
        with self._lock:
            return self._counters.get(name, 0)

    def histogram(self, name: str) -> LatencyHistogram | None:
        with self._lock:
            return self._histograms.get(name)

    def percentile(self, name: str, q: float) -> float:
        """One percentile of a histogram, read under the lock (other threads append to it);
        0.0 when there are no samples yet."""
        with self._lock:
            histogram = self._histograms.get(name)
            if histogram is None:
                return 0.0
            return next(iter(histogram.percentiles((q,)).values()))

    def snapshot(self) -> dict:
        with self._lock:
            latency = {}
            for name, h in sorted(self._histograms.items()):
                latency[name] = {"count": h.count, **h.percentiles(), "max": round(h.max, 3)}
            return {"counters": dict(sorted(self._counters.items())), "latency_ms": latency}


class Ema:
    """A running estimate: each sample moves it by `alpha` of the difference."""

    def __init__(self, initial: float, alpha: float = 0.2):
        self.value, self.alpha = initial, alpha

    def add(self, sample: float) -> None:
        self.value = (1 - self.alpha) * self.value + self.alpha * sample
