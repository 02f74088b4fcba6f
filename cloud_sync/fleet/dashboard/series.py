"""Metrics over time for the dashboard's plots: per device and per model version, in buckets.

The store hands over raw history (`RawHistory`: each metric record's body as stored, and the
first prediction of each device and bucket); everything here is plain Python over it. A store
with `metric_history(devices, since_ns, bucket_ns)` answers it itself; otherwise two portable
statements per device go through `SqlFleetStore.execute` (SQLite and PostgreSQL alike), so
the plots work on whichever store `open_fleet_store` returns.

Per bucket and device: frames, deadline misses (frame_deadline_misses or deadline_misses, as
`status` counts them), the n-weighted mean of the per-second p50s and p95s of every latency
path (the same estimate `status` shows), and shadow pairs/agreements. A metric record carries no
model versions; it is credited to the models its device's first prediction in the same bucket
named; in a bucket without predictions, to the latest earlier ones in the window (or the first
ones, before the first prediction of the window).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from cloud_sync.errors import FleetStoreError
from cloud_sync.fleet.device_input import check_record
from cloud_sync.fleet.metric_sums import MetricSums

FRAME_PATH = "frame_path"


@dataclass(frozen=True)
class RawHistory:
    """What a store hands over: (device, ts_ns, metric body) per device in time order, and
    (device, bucket index, prediction body) for the first prediction of each device and
    bucket. A body is JSON text, or already parsed."""
    metrics: list[tuple[str, int, Any]]
    models: list[tuple[str, int, Any]]


@dataclass
class History:
    """Buckets of `bucket_s` seconds from `since_ns`: per device, and per model version
    ('recognizer crnn@3': every device's metrics while it ran that version)."""
    since_ns: int
    bucket_s: float
    buckets: int
    devices: dict[str, dict[int, MetricSums]] = field(default_factory=dict)
    versions: dict[str, dict[int, MetricSums]] = field(default_factory=dict)
    skipped: int = 0                      # metric records with a bad shape, left out

    def times(self, index: int) -> int:
        """The middle of bucket `index` on the fleet's clock (ns)."""
        return self.since_ns + int((index + 0.5) * self.bucket_s * 1e9)

    def paths(self, device: str) -> list[str]:
        return sorted({p for b in self.devices.get(device, {}).values() for p in b.latency})


def read_history(store: Any, devices: list[str], since_ns: int, bucket_s: float,
                 buckets: int) -> History:
    """The metric history of `devices` since `since_ns`, in `buckets` buckets."""
    bucket_ns = max(int(bucket_s * 1e9), 1)
    own = getattr(store, "metric_history", None)
    raw = own(devices, since_ns, bucket_ns) if callable(own) else \
        _sql_history(store, devices, since_ns, bucket_ns)
    return build_history(raw, since_ns, bucket_s, buckets)


# per device, so the (device, kind, ts_ns) index serves both; `?` placeholders and integer
# division read the same on SQLite and PostgreSQL
_METRICS = ("SELECT ts_ns, body FROM records WHERE device = ? AND kind = 'metric' "
            "AND ts_ns >= ? ORDER BY ts_ns")
_FIRST_PREDICTIONS = (
    "SELECT f.b, r.body FROM records r JOIN (SELECT b, min(seq) AS seq FROM "
    "(SELECT seq, (ts_ns - ?) / ? AS b FROM records WHERE device = ? AND kind = 'prediction' "
    "AND ts_ns >= ?) p GROUP BY b) f ON r.seq = f.seq WHERE r.device = ? ORDER BY f.b")


def _sql_history(store: Any, devices: list[str], since_ns: int, bucket_ns: int) -> RawHistory:
    """Through the store's `execute` (one statement, `?` placeholders, on every backend of
    `SqlFleetStore`)."""
    execute = getattr(store, "execute", None)
    if not callable(execute):
        raise FleetStoreError(f"{type(store).__name__} has neither metric_history() nor "
                              "execute(); the dashboard's plots need one")
    metrics: list[tuple[str, int, Any]] = []
    models: list[tuple[str, int, Any]] = []
    for device in devices:
        metrics += [(device, ts, body) for ts, body in execute(_METRICS, [device, since_ns])]
        models += [(device, int(b), body) for b, body in execute(
            _FIRST_PREDICTIONS, [since_ns, bucket_ns, device, since_ns, device])]
    return RawHistory(metrics, models)


def build_history(raw: RawHistory, since_ns: int, bucket_s: float, buckets: int) -> History:
    history = History(since_ns, bucket_s, buckets)
    # a prediction re-dated past the window (into the future) names no version in it
    model_sets = _model_sets(r for r in raw.models if r[1] < buckets)
    bucket_ns = bucket_s * 1e9
    for device, ts_ns, text in raw.metrics:
        index = int((ts_ns - since_ns) // bucket_ns)
        if not 0 <= index < buckets:      # re-dated into the future, or before the window
            continue
        body = _loads(text)
        if body is None or check_record("metric", body) is not None:
            history.skipped += 1
            continue
        history.devices.setdefault(device, {}).setdefault(index, MetricSums()).add(body)
    for device, buckets in history.devices.items():      # a device's bucket, to its versions
        for index, bucket in buckets.items():
            for version in _versions_at(model_sets.get(device, []), index):
                history.versions.setdefault(version, {}).setdefault(index, MetricSums()).merge(
                    bucket)
    return history


def _model_sets(rows: Iterable[tuple[str, int, Any]]) -> dict[str, list[tuple[int, list[str]]]]:
    """device → [(bucket, ['recognizer crnn@3', ...])] in bucket order: the models named by
    the device's first prediction in each bucket."""
    out: dict[str, list[tuple[int, list[str]]]] = {}
    for device, index, body in sorted(rows, key=lambda r: (r[0], r[1])):
        prediction = _loads(body)
        labels = _labels(prediction.get("models") if isinstance(prediction, dict) else None)
        if labels:
            out.setdefault(device, []).append((index, labels))
    return out


def _labels(models: Any) -> list[str]:
    """'stage name@version' for each well-formed entry of a prediction's `models`."""
    if not isinstance(models, dict):
        return []
    return [f"{stage} {m['name']}@{m['version']}" for stage, m in sorted(models.items())
            if isinstance(m, dict) and isinstance(m.get("name"), str) and
            isinstance(m.get("version"), str)]


def _versions_at(sets: list[tuple[int, list[str]]], index: int) -> list[str]:
    current: list[str] = sets[0][1] if sets else []
    for at, labels in sets:
        if at > index:
            break
        current = labels
    return current


def _loads(text: Any) -> Any:
    if isinstance(text, (dict, list)):    # a server database may hand back parsed JSON
        return text
    try:
        return json.loads(text) if text else None
    except (TypeError, ValueError, RecursionError):
        return None
