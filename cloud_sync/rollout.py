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
from device.model_install import write_atomic

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
        entry = self.devices.get(device, {})
        if entry.get("rollout") != self.id:
            return "pending"
        return entry.get("state", "pending")

    def counts(self, devices: list[str]) -> tuple[int, int]:
        states = [self.device_state(d) for d in devices]
        return (sum(s == HEALTHY for s in states), sum(s in FAILED for s in states))


_STATUS_FIELDS = ("state", "version", "rollout", "progress", "reason", "active", "checks",
                  "shadow")


def record_status(r: Rollout, device: str, entry: dict[str, Any]) -> None:
    """A device's status for this rollout's model (from P/<device>/update/status)."""
    if device not in r.members:
        r.members.append(device)
    r.devices[device] = {k: entry.get(k) for k in _STATUS_FIELDS}


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
            write_atomic(self.path, json.dumps({"rollouts": [asdict(r) for r in rollouts]},
                                               indent=1).encode())

    def latest(self, group: str | None = None) -> Rollout | None:
        rollouts = [r for r in self.load() if group is None or r.group == group]
        return rollouts[-1] if rollouts else None


def progress_bar(percent: float, width: int = 20) -> str:
    filled = int(round(width * max(0.0, min(percent, 100.0)) / 100.0))
    return "[" + "#" * filled + "-" * (width - filled) + f"] {percent:5.1f}%"
