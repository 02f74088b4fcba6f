"""What devices send, checked before the fleet takes it: names (device ids, groups), a telemetry
batch's own fields, each record's body, a device status (their JSON is parsed by
`cloud_sync/json_input.py`).

Everything a device sends is hostile until checked. A record whose fields have the wrong type or
range, or that holds NaN/Infinity (JSON cannot carry them; `allow_nan=False`), gets a reason (a
fixed name such as `metric.schema`, never device text); the fleet store counts it per device and
reason and stores the rest of its batch. A batch or status that cannot be stored at all is a
PayloadError.

Numbers the views add up are bounded (`window_s` from 1 ms to a day, `p50`/`p95` up to a day in
ms, counts up to 2**53), so no sum or rate over them overflows. Text the views show (model
stages, names and versions, latency path names) is `shown_text`: UTF-8 without control
characters, or the record is refused (`record.text`); `printable` escapes whatever else a device
said before a CLI prints it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from cloud_sync.batch import Batch
from cloud_sync.errors import PayloadError

INT64_MAX = 2**63 - 1
_MAX_BOOT_ID = 128
_MAX_COUNT = 2**53                 # a per-second counter beyond this is not a counter
_MIN_WINDOW_S = 1e-3               # 5e-324 s would make frames/s infinite
_MAX_WINDOW_S = 86_400.0
_MAX_STAT_MS = _MAX_WINDOW_S * 1000    # a p50/p95 latency beyond a day is not a latency
# C0 and C1 controls and DEL: a newline or an ESC from a device forges lines on a terminal
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# device ids and group names: 1-64 of A-Z a-z 0-9 _ . -, first a letter or digit; \Z, not $,
# which would let a trailing newline through
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


def valid_name(name: Any) -> bool:
    """A device id or group name as the fleet accepts it (no trailing newline)."""
    return isinstance(name, str) and _NAME.match(name) is not None


def check_batch(batch: Batch) -> None:
    """PayloadError when a batch's own clocks or boot id cannot be stored."""
    if not (_int_in(batch.sent_wall_ns, 0, INT64_MAX) and
            _int_in(batch.sent_mono_ns, 0, INT64_MAX)):
        raise PayloadError(f"batch from {batch.device} has clocks out of range")
    if len(batch.boot_id) > _MAX_BOOT_ID:
        raise PayloadError(f"batch from {batch.device} has a boot id over {_MAX_BOOT_ID} "
                           "characters")
    if not _storable_text(batch.boot_id):
        raise PayloadError(f"batch from {batch.device} has a boot id with a NUL or a lone "
                           "surrogate")


def check_status(status: Any) -> None:
    """PayloadError unless a device status (P/<device>/status) has the shape the views read."""
    if not isinstance(status, dict):
        raise PayloadError(f"status must be a JSON object, got {type(status).__name__}")
    total = status.get("backlog_total")
    if total is not None and not is_count(total):
        raise PayloadError(f"status backlog_total {total!r:.40} is not a count")
    for key in ("backlog", "counters"):
        value = status.get(key)
        if value is not None and not (isinstance(value, dict) and
                                      all(is_count(v) for v in value.values())):
            raise PayloadError(f"status {key} must map names to counts")


def check_record(kind: str, body: Any) -> str | None:
    """None when a record body has the shape the fleet views read, else the reason (a fixed
    name such as `metric.schema`). NaN/Infinity are refused when the body is written."""
    if not isinstance(body, dict):
        return "record.schema"
    if kind in ("metric", "quality"):
        window = body.get("window_s", 1.0)
        if not (is_number(window) and _MIN_WINDOW_S <= window <= _MAX_WINDOW_S):
            return f"{kind}.schema"
    if kind == "metric":
        return _metric_problem(body)
    if kind == "prediction":
        return _prediction_problem(body)
    if kind == "log" and not isinstance(body.get("severity", ""), str):
        return "log.schema"
    return None


def _metric_problem(body: dict[str, Any]) -> str | None:
    counts, stats = body.get("counts", {}), body.get("stats", {})
    if not (isinstance(counts, dict) and all(is_count(v) for v in counts.values())):
        return "metric.schema"
    if not isinstance(stats, dict) or not all(
            isinstance(s, dict) and _latency(s.get("p95")) and
            ("p50" not in s or _latency(s["p50"])) and
            is_count(s.get("n", 1)) for s in stats.values()):
        return "metric.schema"
    if not isinstance(body.get("gauges", {}), dict):
        return "metric.schema"
    if not all(shown_text(path) for path in stats):
        return "record.text"
    return None


def _prediction_problem(body: dict[str, Any]) -> str | None:
    models, shadow = body.get("models", {}), body.get("shadow")
    if not (isinstance(models, dict) and all(
            isinstance(m, dict) and isinstance(m.get("name"), str) and
            isinstance(m.get("version"), str) for m in models.values())):
        return "prediction.schema"
    if shadow is not None and not isinstance(shadow, dict):
        return "prediction.schema"
    shown = [*models, *(t for m in models.values() for t in (m["name"], m["version"])),
             *(shadow[k] for k in ("name", "version") if k in (shadow or {}))]
    if not all(shown_text(t) for t in shown):
        return "record.text"
    return None


def field_problem(seq: int, wall: int, mono: int, boot: str, ts: int) -> str | None:
    """None when a record's seq, clocks and boot id can be stored as they are, else the
    reason."""
    if not _int_in(seq, 0, INT64_MAX):
        return "record.seq"
    if not all(_int_in(v, 0, INT64_MAX) for v in (wall, mono)) or \
            not _int_in(ts, -INT64_MAX, INT64_MAX):
        return "record.clock"
    if len(boot) > _MAX_BOOT_ID or not _storable_text(boot):
        return "record.boot_id"
    return None


def _storable_text(text: str) -> bool:
    """Text every backend stores as sent: UTF-8 without NUL (PostgreSQL's text holds no NUL;
    a lone surrogate, which JSON's \\ud800 escape can carry, is not UTF-8)."""
    if "\0" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown_text(text: Any) -> bool:
    """A string the views may show as sent: storable (`_storable_text`) and without control
    characters (C0, DEL, C1)."""
    return isinstance(text, str) and _storable_text(text) and _CONTROL.search(text) is None


def printable(text: Any) -> str:
    """`text` for a terminal: every character str.isprintable() refuses (controls, ESC, line
    breaks, lone surrogates, bidi overrides) written as its escape (\\n, \\x1b, \\ud800), so
    device text printed by a CLI can neither drive the terminal, forge a line nor fail to
    encode."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def storable_json(body: Any) -> tuple[str | None, str | None]:
    """(compact JSON, None), or (None, reason) for a body JSON cannot carry: NaN or Infinity
    (`allow_nan=False`), or nesting deeper than the encoder goes. A lone surrogate in a string
    (JSON's \\ud800 carries it, UTF-8 cannot) is stored as U+FFFD, so that SQLite's json_*
    and PostgreSQL's jsonb read the body alike."""
    try:
        text = json.dumps(body, separators=(",", ":"), allow_nan=False)
        if "\\ud" in text and not _storable_text(json.dumps(body, ensure_ascii=False)):
            text = json.dumps(_without_lone_surrogates(body), separators=(",", ":"))
        return text, None
    except ValueError:
        return None, "record.non_finite"
    except RecursionError:
        return None, "record.too_deep"


def _without_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):          # a str's surrogates are all lone (pairs are joined)
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_without_lone_surrogates(v) for v in value]
    return value


def _int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def is_count(value: Any) -> bool:
    """A count the fleet's views add up: an int (not a bool) from 0 to 2**53."""
    return _int_in(value, 0, _MAX_COUNT)


def _latency(value: Any) -> bool:
    """A p50/p95 in ms: a number from 0 to a day."""
    return is_number(value) and 0 <= value <= _MAX_STAT_MS


def is_number(value: Any) -> bool:
    """A finite JSON number a float can hold exactly enough (huge ints are not numbers here)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -_MAX_COUNT <= value <= _MAX_COUNT
    return isinstance(value, float) and math.isfinite(value)
