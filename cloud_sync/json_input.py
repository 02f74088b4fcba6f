"""JSON from the network, parsed as hostile: one parser for what a device reads from the
broker and for what the fleet reads from a device. Size and nesting are bounded, and NaN,
Infinity and numbers no float holds (1e999) are refused (Python's json takes them; JSON does
not). Everything wrong is a PayloadError, never RecursionError, ValueError or OverflowError:
input from the network cannot end the thread that reads it."""

from __future__ import annotations

import json
import math
from typing import Any

from cloud_sync.errors import PayloadError

MAX_JSON_DEPTH = 32          # nesting of any JSON parsed here (a manifest needs about 6)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):            # 1e999: valid JSON, but not a float
        raise ValueError(f"{text[:40]} is out of range")
    return value


def parse_json(payload: bytes | str, what: str, limit: int,
               depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """A JSON object of at most `limit` bytes nested at most `depth` deep (NaN, Infinity and
    numbers no float holds, such as 1e999, refused); PayloadError for anything else."""
    if len(payload) > limit:
        raise PayloadError(f"{what} of {len(payload)} bytes is over the limit of {limit}")
    try:
        body = json.loads(payload, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError as exc:
        raise PayloadError(f"{what} is nested too deeply") from exc
    except (ValueError, TypeError, OverflowError) as exc:   # UnicodeDecodeError is a ValueError
        raise PayloadError(f"{what} is not JSON: {exc}") from exc
    if not within_depth(body, depth):
        raise PayloadError(f"{what} is nested more than {depth} deep")
    if not isinstance(body, dict):
        raise PayloadError(f"{what} must be a JSON object, got {type(body).__name__}")
    return body


def within_depth(value: Any, depth: int) -> bool:
    """True when lists/objects nest at most `depth` deep (a scalar is depth 0); iterative."""
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else \
            item if isinstance(item, list) else None
        if children is None:
            continue
        if level + 1 > depth:
            return False
        stack.extend((child, level + 1) for child in children
                     if isinstance(child, (dict, list)))
    return True
