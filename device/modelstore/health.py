"""Is a newly installed model version healthy on this device?

Two parts: `precheck` before it serves (files match the manifest, golden self-test passes,
inference latency p50 on this device fits the manifest's `budget_ms`), and `FrameHealth` over
the first N frames after the swap (recognition error and deadline-miss rates vs thresholds).
A verdict is a plain dict written to models/<name>/<version>/HEALTH.json:

    {"version", "healthy": bool, "reason": str, "stage": "precheck"|"frames", "checks": {...}}
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from device.errors import EdgelensError
from device.metrics import Metrics, time_calls
from device.modelstore.store import ModelVersion
from device.runtime import TFLiteModel


@dataclass(frozen=True)
class HealthSettings:
    frames: int = 100
    max_error_rate: float = 0.02
    max_miss_rate: float = 0.25
    latency_runs: int = 5

    @classmethod
    def from_config(cls, updates: Any) -> "HealthSettings":
        return cls(updates.health_frames, updates.max_error_rate, updates.max_miss_rate,
                   updates.latency_runs)


def verdict(version: ModelVersion, healthy: bool, reason: str, stage: str,
            checks: dict[str, Any]) -> dict[str, Any]:
    return {"name": version.name, "version": version.version, "healthy": healthy,
            "reason": reason, "stage": stage, "checks": checks, "wall_ns": time.time_ns()}


def measure_latency_ms(version: ModelVersion, backend: str, runs: int) -> float:
    """p50 of `runs` inferences of the artifact on zeros (after one warm-up run)."""
    model = TFLiteModel(version.artifact, backend=backend, num_threads=1)
    feeds = {spec.name: np.zeros(spec.shape, np.float32) for spec in model.inputs}
    return float(np.median(time_calls(lambda _: model.run(feeds), [None], runs=runs)))


def precheck(version: ModelVersion, backend: str, settings: HealthSettings) -> dict[str, Any]:
    """Files, golden self-test and latency budget; the verdict (healthy or why not)."""
    checks: dict[str, Any] = {}
    problems = version.check_files()
    if problems:
        return verdict(version, False, "files: " + "; ".join(problems), "precheck", checks)
    # deferred: the sync process (update agent) loads OpenCV and the model stages
    # only when it checks a model update, not at start
    from device.modelstore.golden import run_golden
    try:
        results = run_golden(version, backend)
    except EdgelensError as exc:
        return verdict(version, False, f"golden self-test could not run: {exc}", "precheck",
                       checks)
    failed = [r for r in results if not r.passed]
    checks["golden"] = {"cases": len(results), "failed": len(failed)}
    if failed:
        first = failed[0]
        return verdict(version, False, f"golden self-test failed {len(failed)}/{len(results)}"
                       f" (first: {first.input!r} expected {first.expected!r}, got "
                       f"{first.got!r})", "precheck", checks)
    budget = version.manifest.get("budget_ms")
    try:
        p50 = measure_latency_ms(version, backend, settings.latency_runs)
    except EdgelensError as exc:
        return verdict(version, False, f"latency check could not run: {exc}", "precheck",
                       checks)
    checks["latency_p50_ms"] = round(p50, 3)
    checks["budget_ms"] = budget
    if isinstance(budget, (int, float)) and p50 > budget:
        return verdict(version, False, f"latency p50 {p50:.2f} ms is over the budget of "
                       f"{budget} ms", "precheck", checks)
    return verdict(version, True, "golden self-test and latency budget passed", "precheck",
                   checks)


_COUNTERS = ("frames_captured", "recognition_runs_started", "recognition_discarded_stale",
             "recognition_errors", "recognition_deadline_misses", "frames_dropped")


class FrameHealth:
    """Error and miss rates of the pipeline since `start()`, judged after `frames` frames."""

    def __init__(self, metrics: Metrics, settings: HealthSettings):
        self.metrics, self.settings = metrics, settings
        self._base = self._read()

    def _read(self) -> dict[str, int]:
        return {name: self.metrics.counter(name) for name in _COUNTERS}

    def delta(self) -> dict[str, int]:
        now = self._read()
        return {name: now[name] - self._base[name] for name in _COUNTERS}

    def judge(self, version: ModelVersion, precheck_checks: dict[str, Any]
              ) -> dict[str, Any] | None:
        """None until `frames` frames went by; then the verdict."""
        d = self.delta()
        if d["frames_captured"] < self.settings.frames:
            return None
        runs = max(d["recognition_runs_started"] + d["recognition_discarded_stale"], 1)
        error_rate = d["recognition_errors"] / runs
        miss_rate = d["recognition_deadline_misses"] / runs
        checks = dict(precheck_checks, frames=d, error_rate=round(error_rate, 4),
                      miss_rate=round(miss_rate, 4))
        if error_rate > self.settings.max_error_rate:
            return verdict(version, False, f"error rate {error_rate:.3f} over "
                           f"{self.settings.max_error_rate} in the first {d['frames_captured']}"
                           " frames", "frames", checks)
        if miss_rate > self.settings.max_miss_rate:
            return verdict(version, False, f"deadline-miss rate {miss_rate:.3f} over "
                           f"{self.settings.max_miss_rate} in the first "
                           f"{d['frames_captured']} frames", "frames", checks)
        return verdict(version, True, f"healthy over {d['frames_captured']} frames", "frames",
                       checks)
