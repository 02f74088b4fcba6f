"""What the dashboard's pages show, gathered from the fleet store and the rollout file.

The device table is `status`'s (`FleetStore.device_rows`, `refused`); the rollout tables are
`rollout status`'s (`RolloutFile`, `rollout_rows`, `Rollout.tally`); the plots come from
`series.read_history`. Nothing here writes: the dashboard is read-only.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from cloud_sync.errors import SyncError
from cloud_sync.fleet.dashboard.charts import Chart, line_chart
from cloud_sync.fleet.dashboard.series import FRAME_PATH, History, read_history
from cloud_sync.fleet.metric_sums import MetricSums
from cloud_sync.fleet.device_input import valid_name
from cloud_sync.fleet.rollout import Rollout, RolloutFile, summary_text
from cloud_sync.fleet.store_views import DeviceRow
from cloud_sync.fleet.updates_cli import rollout_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ViewSettings:
    window_s: float          # behind the table's frames/s, p95 and miss rate (as `status`)
    history_s: float         # the plots' time range
    buckets: int             # points per plotted line
    rollout_file: str
    refresh_s: int = 15      # the page reloads itself (0: never)
    max_lines: int = 8       # series per chart


class FleetView:
    def __init__(self, store: Any, settings: ViewSettings):
        self.store = store
        self.settings = settings

    def overview(self, now_ns: int | None = None) -> dict[str, Any]:
        now_ns = now_ns or time.time_ns()
        rows = self.store.device_rows(now_ns, self.settings.window_s)
        history = self._history(now_ns, [r.device for r in rows])
        rollouts, rollout_error = self._rollouts()
        devices, versions = history.devices, history.versions
        return {"rows": rows, "refused": self.store.refused(), "rollouts": rollouts,
                "rollout_error": rollout_error, "settings": self.settings,
                "shadow_rows": [r for r in rows if r.shadow],
                "generated": _iso(now_ns), "skipped": history.skipped,
                "charts": [c for c in (
                    self._chart("p95-device", f"{FRAME_PATH} p95 per device", "ms", history,
                                devices, _frame_p95),
                    self._chart("miss-device", "deadline-miss rate per device", "%", history,
                                devices, _miss_rate),
                    self._chart("p95-version", f"{FRAME_PATH} p95 per model version", "ms",
                                history, versions, _frame_p95),
                    self._chart("miss-version", "deadline-miss rate per model version", "%",
                                history, versions, _miss_rate),
                    self._chart("shadow-device", "shadow agreement per device", "%", history,
                                devices, _agreement, optional=True)) if c is not None]}

    def device(self, device: str, now_ns: int | None = None) -> dict[str, Any] | None:
        """The device's page, or None for a device the store does not know."""
        if not valid_name(device):
            return None
        now_ns = now_ns or time.time_ns()
        row = next((r for r in self.store.device_rows(now_ns, self.settings.window_s)
                    if r.device == device), None)
        if row is None:
            return None
        history = self._history(now_ns, [device])
        mine = history.devices.get(device, {})
        by_path = {path: mine for path in history.paths(device)}
        charts = [self._chart(f"{which}-path", f"latency {which} per path", "ms", history,
                              by_path, lambda path, b, w=which: b.percentile(path, w))
                  for which in ("p50", "p95")]
        charts.append(self._chart("miss", "deadline-miss rate", "%", history, {device: mine},
                                  _miss_rate))
        charts.append(self._chart("shadow", "shadow agreement", "%", history, {device: mine},
                                  _agreement, optional=True))
        return {"row": row, "charts": [c for c in charts if c is not None],
                "refused": self.store.refused().get(device, {}),
                "rollouts": [(r, entries) for r, _, rows in self._rollouts()[0]
                             if (entries := [d for d in rows if d["device"] == device])],
                "settings": self.settings, "generated": _iso(now_ns)}

    # --- pieces ---------------------------------------------------------------------------

    def _history(self, now_ns: int, devices: list[str]) -> History:
        s = self.settings
        return read_history(self.store, devices, now_ns - int(s.history_s * 1e9),
                            s.history_s / s.buckets, s.buckets)

    def _chart(self, chart_id: str, title: str, unit: str, history: History,
               groups: dict[str, dict[int, MetricSums]], value: Value,
               optional: bool = False) -> Chart | None:
        """One line per group (a device, a model version or a latency path): value(label,
        bucket) at the middle of each bucket that has one. None for an `optional` chart with
        no data at all."""
        series = {label: [(history.times(i), v) for i, b in sorted(buckets.items())
                          if (v := value(label, b)) is not None]
                  for label, buckets in groups.items()}
        if optional and not any(series.values()):
            return None
        end = history.since_ns + int(history.bucket_s * history.buckets * 1e9)
        return line_chart(chart_id, title, unit, series, (history.since_ns, end),
                          self.settings.max_lines)

    def _rollouts(self) -> tuple[list[tuple[Rollout, str, list[dict]]], str]:
        """The latest rollout per group with its summary and device rows, and an error text
        when the rollout file cannot be read (the rest of the page still shows)."""
        try:
            latest: dict[str, Rollout] = {}
            for r in RolloutFile(self.settings.rollout_file).load():
                latest[r.group] = r
            return [(r, summary_text(r.tally()), rollout_rows(r))
                    for r in latest.values()], ""
        except (SyncError, TypeError, ValueError, AttributeError) as exc:
            log.warning("rollout file unreadable", extra={
                "path": str(self.settings.rollout_file), "error": str(exc)})
            return [], f"rollout file {self.settings.rollout_file} is unreadable: {exc}"


Value = Callable[[str, MetricSums], "float | None"]


def _frame_p95(label: str, bucket: MetricSums) -> float | None:
    return bucket.percentile(FRAME_PATH, "p95")


def _miss_rate(label: str, bucket: MetricSums) -> float | None:
    return bucket.miss_rate()


def _agreement(label: str, bucket: MetricSums) -> float | None:
    return bucket.agreement()


def online_text(row: DeviceRow) -> str:
    return "unknown" if row.online is None else ("online" if row.online else "offline")


def _iso(ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ns / 1e9))
