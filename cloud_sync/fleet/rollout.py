"""Rollout state on the fleet side: who gets a version when, and when to promote or halt.

A rollout targets one group: a canary share of its devices first; when at least
`promote_percent` of the canaries report healthy it goes to the whole group; when more than
`halt_percent` of the devices that got it failed (rolled back, refused, unhealthy) it halts
(like AWS IoT Jobs abort rules and hawkBit group thresholds). The state is one JSON file
(`[updates] rollout_file`), written atomically by the process that drives the rollout and read
by `edgelens-fleet rollout status`.
"""

from __future__ import annotations

import fcntl
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cloud_sync.errors import SyncError
from cloud_sync.fleet.device_input import printable
from device.modelstore.install import write_atomic

HEALTHY = "healthy"
FAILED = ("rolled_back", "refused", "unhealthy")
TERMINAL = (HEALTHY,) + FAILED


@dataclass
class Rollout:
    id: str
    group: str
    name: str
    version: str
    source: str
    previous: str | None = None
    rollback: bool = False
    shadow: bool = False                      # installed as a challenger, not activated
    canary_percent: float = 10.0
    promote_percent: float = 100.0
    halt_percent: float = 20.0
    stage: str = "canary"                     # canary, all, halted, done
    canaries: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    bytes_served: dict[str, int] = field(default_factory=dict)
    started_ns: int = field(default_factory=time.time_ns)
    finished_ns: int | None = None
    reason: str = ""

    def targets(self) -> list[str]:
        return list(self.canaries) if self.stage == "canary" else list(self.members)

    def device_state(self, device: str) -> str:
        entry = self.devices.get(device)
        if not isinstance(entry, dict) or entry.get("rollout") != self.id:
            return "pending"
        state = entry.get("state")
        return state if isinstance(state, str) else "pending"

    def counts(self, devices: list[str]) -> tuple[int, int]:
        states = [self.device_state(d) for d in devices]
        return (sum(s == HEALTHY for s in states), sum(s in FAILED for s in states))

    def tally(self) -> dict[str, int]:
        """Devices by where they are now: every member and every device with a recorded
        status, so devices `serve` updated after the push ended are counted too (it records
        them in `members` and `devices` of the same rollout)."""
        everyone = set(map(str, self.members)) | set(map(str, self.devices))
        states = [self.device_state(d) for d in everyone]
        healthy = sum(s == HEALTHY for s in states)
        failed = sum(s in FAILED for s in states)
        pending = sum(s == "pending" for s in states)
        return {"devices": len(states), "healthy": healthy, "failed": failed,
                "updating": len(states) - healthy - failed - pending, "pending": pending}


def summary_text(tally: dict[str, int]) -> str:
    """'2/3 healthy, 0 failed, 1 updating' (updating and pending only when there are any)."""
    text = f"{tally['healthy']}/{tally['devices']} healthy, {tally['failed']} failed"
    for key in ("updating", "pending"):
        if tally[key]:
            text += f", {tally[key]} {key}"
    return text


_SHORT_TEXT = 200           # state, version, rollout id, active version
_REASON_TEXT = 1000
_CHECKS_BYTES = 8 * 1024


def record_status(r: Rollout, device: str, entry: dict[str, Any]) -> None:
    """A device's status for this rollout's model (from P/<device>/update/status), reduced to
    fields of the expected types: a field that is not is kept as None (the device sends
    whatever it likes; the rollout file, `decide` and `rollout status` only see these). Text
    is kept with its control characters and lone surrogates escaped (`printable`): a reason
    with \\ud800 would stop `rollout status` and the dashboard from encoding it, and an ESC
    or a newline would drive the operator's terminal."""
    if device not in r.members:
        r.members.append(device)
    r.devices[device] = clean_status(entry)


def clean_status(entry: Any) -> dict[str, Any]:
    """The fields of a device's model status the fleet keeps, each of its type or None."""
    entry = entry if isinstance(entry, dict) else {}
    checks = entry.get("checks")
    checks_text = _json_or_empty(checks) if isinstance(checks, dict) else ""
    shadow = entry.get("shadow")
    return {"state": _text(entry.get("state"), _SHORT_TEXT),
            "version": _text(entry.get("version"), _SHORT_TEXT),
            "rollout": _text(entry.get("rollout"), _SHORT_TEXT),
            "progress": progress_value(entry.get("progress")),
            "reason": _text(entry.get("reason"), _REASON_TEXT),
            "active": _text(entry.get("active"), _SHORT_TEXT),
            "checks": checks if checks_text and len(checks_text) <= _CHECKS_BYTES else None,
            "shadow": shadow if isinstance(shadow, bool) else None}


def progress_value(value: Any) -> float | None:
    """A download progress in percent (0-100), or None for anything that is not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return min(max(value, 0.0), 100.0) if math.isfinite(value) else None


def _text(value: Any, limit: int) -> str | None:
    return printable(value[:limit])[:limit] if isinstance(value, str) else None


def _json_or_empty(value: Any) -> str:
    """JSON text, or '' when it holds NaN/Infinity (or cannot be encoded): never stored."""
    try:
        return json.dumps(value, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return ""


def choose_canaries(members: list[str], percent: float) -> list[str]:
    if percent <= 0 or not members:
        return []
    count = max(1, math.ceil(len(members) * percent / 100.0))
    return sorted(members)[:count]


def decide(r: Rollout) -> tuple[str, str] | None:
    """The next stage and why, or None to stay."""
    if r.stage == "canary":
        if not r.canaries:
            return "all", "no canaries"
        healthy, failed = r.counts(r.canaries)
        if 100.0 * failed / len(r.canaries) > r.halt_percent:
            return "halted", f"{failed}/{len(r.canaries)} canaries failed (> {r.halt_percent}%)"
        if 100.0 * healthy / len(r.canaries) >= r.promote_percent:
            return "all", f"{healthy}/{len(r.canaries)} canaries healthy"
        return None
    if r.stage == "all" and r.members:
        healthy, failed = r.counts(r.members)
        if 100.0 * failed / len(r.members) > r.halt_percent:
            return "halted", f"{failed}/{len(r.members)} devices failed (> {r.halt_percent}%)"
        if healthy + failed == len(r.members):
            return "done", f"{healthy}/{len(r.members)} healthy, {failed} failed"
    return None


class RolloutFile:
    """All rollouts, newest last, in one JSON file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def load(self) -> list[Rollout]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise SyncError(f"rollout file {self.path} is unreadable: {exc}") from exc
        return [Rollout(**entry) for entry in raw.get("rollouts", [])]

    def save(self, rollout: Rollout) -> None:
        """Replace this rollout's entry. Several processes write the file (a push per group,
        `serve`): a lock beside it keeps one's read-modify-write from losing another's."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            rollouts = [r for r in self.load() if r.id != rollout.id] + [rollout]
            try:
                text = json.dumps({"rollouts": [asdict(r) for r in rollouts]}, indent=1,
                                  allow_nan=False)
            except ValueError as exc:   # NaN/Infinity: not JSON, and not written
                raise SyncError(f"rollout {rollout.id} cannot be written to {self.path}: "
                                f"{exc}") from exc
            write_atomic(self.path, text.encode())

    def latest(self, group: str | None = None) -> Rollout | None:
        rollouts = [r for r in self.load() if group is None or r.group == group]
        return rollouts[-1] if rollouts else None


def progress_bar(percent: Any, width: int = 20) -> str:
    percent = progress_value(percent) or 0.0
    filled = int(round(width * max(0.0, min(percent, 100.0)) / 100.0))
    return "[" + "#" * filled + "-" * (width - filled) + f"] {percent:5.1f}%"
