"""Sums over a device's per-second metric records: frames, deadline misses, shadow pairs and
the n-weighted p50/p95 of every latency path. The one accumulation behind `edgelens-fleet
status` (cloud_sync/fleet/store_views.py) and the dashboard's plots
(cloud_sync/fleet/dashboard/series.py), so both say the same. A rate or percentile that is not
finite (bodies are bounded at ingest, but rows may predate that) is None: not shown."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from cloud_sync.fleet.device_input import is_number

# the pipeline's name for a missed frame deadline, and the older name some devices still send
FRAME_MISS_COUNTERS = ("frame_deadline_misses", "deadline_misses")


@dataclass
class MetricSums:
    """Sums over metric records (one device's window in `status`; one bucket of a device or
    of a model version on the dashboard)."""
    seconds: float = 0.0
    frames: int = 0
    misses: int = 0
    pairs: int = 0                # shadow pairs, agreements and units skipped
    agree: int = 0
    skipped: int = 0
    # path → [sum(p50*n), sum(p95*n), sum(n)]
    latency: dict[str, list[float]] = field(default_factory=dict)

    def add(self, m: dict[str, Any]) -> None:
        self.seconds += float(m.get("window_s", 1.0))
        counts = m.get("counts", {})
        self.frames += counts.get("frames_captured", 0)
        self.misses += sum(counts.get(k, 0) for k in FRAME_MISS_COUNTERS)
        self.pairs += counts.get("shadow_pairs", 0)
        self.agree += counts.get("shadow_agree", 0)
        self.skipped += counts.get("shadow_skipped", 0)
        for name, stats in m.get("stats", {}).items():
            n, p50 = stats.get("n", 1), stats.get("p50")
            if not is_number(p50):          # absent: the p95 stands in
                p50 = stats["p95"]
            sums = self.latency.setdefault(name.removeprefix("latency_ms."), [0.0, 0.0, 0])
            sums[0] += float(p50) * n
            sums[1] += float(stats["p95"]) * n
            sums[2] += n

    def merge(self, other: "MetricSums") -> None:
        self.seconds += other.seconds
        self.frames += other.frames
        self.misses += other.misses
        self.pairs += other.pairs
        self.agree += other.agree
        self.skipped += other.skipped
        for path, (p50, p95, n) in other.latency.items():
            sums = self.latency.setdefault(path, [0.0, 0.0, 0])
            sums[0] += p50
            sums[1] += p95
            sums[2] += n

    def percentile(self, path: str, which: str) -> float | None:
        sums = self.latency.get(path)
        if not sums or not sums[2]:
            return None
        return _finite(sums[0 if which == "p50" else 1] / sums[2], 2)

    def frames_per_s(self) -> float | None:
        return _finite(self.frames / self.seconds, 2) if self.seconds else None

    def miss_rate(self) -> float | None:
        return round(self.misses / self.frames, 4) if self.frames else None

    def agreement(self) -> float | None:
        return round(self.agree / self.pairs, 4) if self.pairs else None


def _finite(value: float, digits: int) -> float | None:
    return round(value, digits) if math.isfinite(value) else None
