"""What a telemetry record is: its kind, its priorities, and the clocks stamped on it.

Every record carries the wall clock (may be wrong while offline), the monotonic clock and the
boot id it belongs to, so the fleet side can re-date records from a device whose clock was off.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

# Kinds, in the order they are evicted when the store is full (first evicted first).
# Within a tier the oldest record goes first; sent records always go before unsent ones.
EVICTION_TIERS: dict[str, int] = {
    "metric": 0,       # per-second metric aggregates
    "quality": 0,      # per-minute data-quality aggregates
    "prediction": 1,
    "log": 2,
    "feedback": 2,
    "audit": 3,        # last, and never silently: evicting one writes a new audit record
}
KINDS = tuple(EVICTION_TIERS)

# Send priority (lower goes first): audit and errors first, bulk metrics last.
_SEND_PRIORITY = {"audit": 0, "feedback": 2, "log": 3, "prediction": 4, "metric": 5,
                  "quality": 5}
_ERROR_SEVERITIES = frozenset({"ERROR", "CRITICAL"})


def send_priority(kind: str, body: dict[str, Any]) -> int:
    if kind == "log" and body.get("severity") in _ERROR_SEVERITIES:
        return 1
    return _SEND_PRIORITY[kind]


@dataclass(frozen=True, slots=True)
class Record:
    """One record on its way to the store. `body` is turned into JSON by the writer thread.
    `jseq`: its number in the recorder's journal (0: not journaled; device/telemetry/journal.py);
    `boot_id`: set on a record read back from the journal (empty: the store's clock's boot);
    `encoded`: the body's JSON text when it was made already (for the journal)."""
    kind: str
    wall_ns: int
    mono_ns: int
    body: dict[str, Any]
    jseq: int = 0
    boot_id: str = ""
    encoded: str = ""


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One record as read back from the store; `body` is its JSON text."""
    seq: int
    kind: str
    wall_ns: int
    mono_ns: int
    boot_id: str
    body: str


def read_boot_id() -> str:
    """The kernel's id for this boot (shared by every process, matches CLOCK_MONOTONIC)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return _PROCESS_BOOT_ID


_PROCESS_BOOT_ID = "proc-" + uuid.uuid4().hex


@dataclass
class Clock:
    """Wall and monotonic nanoseconds plus the boot id; tests hand in their own."""
    boot_id: str = field(default_factory=read_boot_id)

    def now(self) -> tuple[int, int]:
        return time.time_ns(), time.monotonic_ns()


# --- predictions: what the pipeline hands the recorder for each read line ------------------

@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str


def new_prediction_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Prediction:
    """One recognized (and maybe translated) region of one frame."""
    text: str
    confidence: float
    models: Mapping[str, ModelRef] = field(default_factory=dict)   # stage -> model
    region: tuple[int, int, int, int] | None = None                # x, y, w, h
    translation: str | None = None
    translation_source: str | None = None                          # model, cache, dictionary
    latency_ms: Mapping[str, float] = field(default_factory=dict)  # stage -> ms
    prediction_id: str = field(default_factory=new_prediction_id)
    # shadow mode: the challenger's reading of the same line ({"version", "text",
    # "confidence", "agree", "latency_ms", ...}); its text is hashed like `text`
    shadow: Mapping[str, Any] | None = None
