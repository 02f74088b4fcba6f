"""What the fleet store answers, on any SQL backend: a status row per device (`edgelens-fleet
status`, the dashboard), record counts and seqs, the ingest workers' counters and the input
refused per device.

`SqlFleetViews` is the reading half of `store.SqlFleetStore` (its base class): all it needs of a
backend is a transaction (`_tx`, giving a `Tx`) and a JSON accessor (`_json_at`). The views read
defensively, so rows written before the checks of `device_input` (or by another writer) cannot
break `status`: a body with a bad shape is left out and logged, an aggregate that is not finite
is not shown, and records dated after `now` (re-dated into the future; _CLOCK_SLACK_NS allows
for the clocks of the machines that dated them) count in no window.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Protocol, Sequence

from cloud_sync.fleet.device_input import check_record, is_count, shown_text
from cloud_sync.fleet.metric_sums import MetricSums
from device.modelstore.shadow import SHADOW_LATENCY

log = logging.getLogger(__name__)

_CLOCK_SLACK_NS = 60 * 10**9       # ingest workers and status may run on different machines


@dataclass
class DeviceRow:
    """One line of `edgelens-fleet status`."""
    device: str
    online: bool | None
    last_seen: str | None
    last_seen_age_s: float | None
    backlog: int | None
    frames_per_s: float | None
    p95_ms: dict[str, float] = field(default_factory=dict)
    miss_rate: float | None = None
    models: dict[str, str] = field(default_factory=dict)
    errors_last_hour: int = 0
    records: int = 0
    # shadow mode over the window: challenger, pairs, agreement, p95 ms, skipped share
    shadow: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Tx(Protocol):
    """One transaction of a backend; `?` placeholders on every backend."""
    def run(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]: ...
    def insert_records(self, rows: list[tuple]) -> int: ...


class SqlFleetViews:
    """The reads of the fleet store, written once for every SQL backend. A backend supplies
    `_tx` (a transaction; its driver's errors become FleetStoreError there) and `_json_at`."""

    @contextmanager
    def _tx(self, what: str, exclusive: bool = False) -> Iterator[Tx]:
        raise NotImplementedError

    def _json_at(self, path: str) -> str:
        raise NotImplementedError

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        """One statement in its own transaction (`?` placeholders on every backend): for
        maintenance and tests; the fleet itself goes through the store's methods."""
        with self._tx("cannot run a statement") as tx:
            return tx.run(sql, args)

    # --- reading ------------------------------------------------------------------------------

    def record_count(self, device: str | None = None) -> int:
        where, args = ("WHERE device = ?", [device]) if device else ("", [])
        return self.execute(f"SELECT count(*) FROM records {where}", args)[0][0]

    def seqs(self, device: str) -> list[int]:
        return [r[0] for r in self.execute("SELECT seq FROM records WHERE device = ? "
                                           "ORDER BY seq", [device])]

    def workers(self) -> dict[str, dict[str, int]]:
        names = ("messages", "records", "duplicates", "dropped")
        return {r[0]: dict(zip(names, r[1:])) for r in self.execute(
            f"SELECT worker, {', '.join(names)} FROM workers ORDER BY worker")}

    def refused(self) -> dict[str, dict[str, int]]:
        """device → reason → how many records or messages from it were refused."""
        out: dict[str, dict[str, int]] = {}
        for device, reason, n in self.execute("SELECT device, reason, n FROM refused "
                                              "ORDER BY device, reason"):
            out.setdefault(device, {})[reason] = n
        return out

    def device_rows(self, now_ns: int, window_s: float) -> list[DeviceRow]:
        with self._tx("cannot read the devices") as tx:
            devices = tx.run("SELECT device, online, last_seen_ns, status FROM devices "
                             "ORDER BY device")
            return [self._row(tx, d, now_ns, window_s) for d in devices]

    def _row(self, tx: Tx, d: tuple, now_ns: int, window_s: float) -> DeviceRow:
        device, online, last, status_text = d
        status = _loads_dict(status_text)
        row = DeviceRow(
            device=device, online=None if online is None else bool(online),
            last_seen=_iso(last), last_seen_age_s=None if last is None
            else round((now_ns - last) / 1e9, 1),
            backlog=status.get("backlog_total") if is_count(status.get("backlog_total"))
            else None,
            frames_per_s=None)
        until = now_ns + _CLOCK_SLACK_NS
        self._metrics_into(tx, row, (now_ns - int(window_s * 1e9), until))
        row.models = self._models(tx, device)
        row.errors_last_hour = tx.run(
            "SELECT count(*) FROM records WHERE device = ? AND kind = 'log' AND ts_ns >= ? "
            f"AND ts_ns <= ? AND {self._json_at('$.severity')} IN ('ERROR', 'CRITICAL')",
            [device, now_ns - 3600 * 10**9, until])[0][0]
        row.records = tx.run("SELECT count(*) FROM records WHERE device = ?", [device])[0][0]
        return row

    def _metrics_into(self, tx: Tx, row: DeviceRow, span_ns: tuple[int, int]) -> None:
        sums, skipped = MetricSums(), 0
        for (body,) in tx.run("SELECT body FROM records WHERE device = ? AND kind = 'metric' "
                              "AND ts_ns >= ? AND ts_ns <= ?", [row.device, *span_ns]):
            m = _loads_dict(body)
            if check_record("metric", m) is not None:     # stored before the checks existed
                skipped += 1
                continue
            sums.add(m)
        if skipped:
            log.warning("metric records with a bad shape left out of status",
                        extra={"device": row.device, "count": skipped})
        if sums.seconds:
            row.frames_per_s = sums.frames_per_s()
            row.miss_rate = sums.miss_rate() or 0.0
        # n-weighted mean of the per-second p95s: an estimate, labelled as such in --help
        row.p95_ms = {path: p95 for path in sorted(sums.latency)
                      if (p95 := sums.percentile(path, "p95")) is not None}
        challenger_p95 = next((row.p95_ms[k] for k in SHADOW_LATENCY.values()
                               if k in row.p95_ms), None)
        shadow = {"shadow_pairs": sums.pairs, "shadow_agree": sums.agree,
                  "shadow_skipped": sums.skipped}
        row.shadow = self._shadow(tx, row.device, span_ns, shadow, challenger_p95)

    def _shadow(self, tx: Tx, device: str, span_ns: tuple[int, int], counts: dict[str, int],
                p95_ms: float | None) -> dict[str, Any]:
        """Shadow mode over the window: the challenger named by the latest paired prediction,
        agreement per pair (exact text; all regions matched for a detector), the challenger's
        p95 ms per unit, share of units (lines, or frames for a detector) skipped."""
        pairs, skipped = counts["shadow_pairs"], counts["shadow_skipped"]
        if not pairs and not skipped:
            return {}
        latest = tx.run(
            f"SELECT {self._json_at('$.shadow.name')}, {self._json_at('$.shadow.version')} "
            "FROM records WHERE device = ? AND kind = 'prediction' AND ts_ns >= ? AND "
            f"ts_ns <= ? AND {self._json_at('$.shadow')} IS NOT NULL ORDER BY seq DESC LIMIT 1",
            [device, *span_ns])
        named = latest and all(shown_text(t) for t in latest[0])
        return {"model": f"{latest[0][0]}@{latest[0][1]}" if named else None, "pairs": pairs,
                "agreement": round(counts["shadow_agree"] / pairs, 4) if pairs else None,
                "p95_ms": p95_ms, "skipped_share": round(skipped / (pairs + skipped), 4)}

    def _models(self, tx: Tx, device: str) -> dict[str, str]:
        """The model versions of the latest prediction with a well-formed `models`."""
        for (body,) in tx.run("SELECT body FROM records WHERE device = ? AND kind = "
                              "'prediction' ORDER BY seq DESC LIMIT 50", [device]):
            prediction = _loads_dict(body)
            if check_record("prediction", prediction) is None:
                models = prediction.get("models", {})
                return {stage: f"{m['name']}@{m['version']}" for stage, m in models.items()}
        return {}


def _loads_dict(text: str | None) -> dict[str, Any]:
    """A stored JSON object, or {} for anything else (NULL, not JSON, not an object)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns / 1e9))
