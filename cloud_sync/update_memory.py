"""What the update agent keeps across restarts: its replay memory (the last issued_ns of each
model's manifest and control block, and the versions that failed here) and its audit records.

The memory lives beside the models (`<store>/.update-memory.json`), never in the staging
directory, which is cleaned up when space runs out.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from device.errors import TelemetryError
from device.modelstore import install
from device.telemetry.records import Clock, Record
from device.telemetry.store import TelemetryStore

log = logging.getLogger(__name__)

MEMORY_FILE = ".update-memory.json"   # in the store root, never in the staging directory


class ReplayMemory:
    """{"issued": {model: ns}, "control": {model: ns}, "failed": {model: [versions]}} in one
    JSON file, written atomically."""

    def __init__(self, path: Path, legacy: Path | None = None):
        self.path, self.legacy = path, legacy

    def load(self, path: Path | None = None) -> dict[str, Any]:
        """The replay memory: {"issued": {model: ns}, "control": {model: ns}, "failed":
        {model: [versions]}}, with anything of another shape left out."""
        try:
            raw = json.loads((path or self.path).read_text())
        except FileNotFoundError:
            raw = {}
        except (OSError, ValueError, RecursionError) as exc:
            log.error("update memory unreadable: replay protection starts afresh",
                      extra={"path": str(path or self.path), "error": str(exc)})
            raw = {}
        raw = raw if isinstance(raw, dict) else {}
        memory: dict[str, Any] = {}
        for part in ("issued", "control"):
            entries = raw.get(part) if isinstance(raw.get(part), dict) else {}
            memory[part] = {k: v for k, v in entries.items()
                            if isinstance(v, int) and not isinstance(v, bool)}
        failed = raw.get("failed") if isinstance(raw.get("failed"), dict) else {}
        memory["failed"] = {k: [v for v in versions if isinstance(v, str)]
                            for k, versions in failed.items() if isinstance(versions, list)}
        return memory

    def save(self, memory: dict[str, Any]) -> None:
        """Atomically (install.write_atomic); OSError when it cannot be written (a full disk),
        with no temp file left behind."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        install.write_atomic(self.path, json.dumps(memory).encode())

    def migrate(self) -> None:
        """Older versions kept the memory in <staging>/memory.json: merge it in, drop it."""
        legacy = self.legacy
        if legacy is None or legacy == self.path or not legacy.is_file():
            return
        old, memory = self.load(legacy), self.load()
        for part in ("issued", "control"):
            for name, issued in old[part].items():
                memory[part][name] = max(issued, memory[part].get(name, 0))
        for name, versions in old["failed"].items():
            known = memory["failed"].setdefault(name, [])
            known.extend(v for v in versions if v not in known)
        self.save(memory)
        legacy.unlink(missing_ok=True)


class AuditSink:
    """Audit records into the device's telemetry store (the sync agent sends them on).

    It writes through the store as this process already has it open (`TelemetryStore.shared`:
    the sync agent's connection, one per process), never a second connection of its own. A
    record the store does not take (disk full, locked...) is kept and written with the next
    one or at close."""

    _MAX_PENDING = 10_000

    def __init__(self, telemetry: Any, store: TelemetryStore | None = None):
        self.settings = telemetry
        self._store: TelemetryStore | None = store
        self._owns_store = store is None
        self._clock = Clock()
        self._pending: list[Record] = []

    def __call__(self, action: str, fields: dict[str, Any]) -> None:
        log.info("audit record", extra={"action": action, "details": fields})
        if not self.settings.enabled:
            return
        wall, mono = self._clock.now()
        self._pending.append(Record("audit", wall, mono, {"action": action, **fields}))
        if len(self._pending) > self._MAX_PENDING:
            del self._pending[0]
            log.error("too many audit records waiting for the telemetry store; the oldest "
                      "was dropped", extra={"limit": self._MAX_PENDING})
        self._write()

    def _write(self) -> bool:
        try:
            if self._store is None:
                self._store = TelemetryStore.shared(self.settings.db_path, self.settings)
            self._store.insert(self._pending)
        except TelemetryError as exc:
            log.error("audit records not stored yet (kept, retried with the next one)",
                      extra={"count": len(self._pending), "error": str(exc)})
            return False
        self._pending = []
        return True

    def close(self) -> None:
        if self._pending and self.settings.enabled and not self._write():
            log.error("audit records never reached the telemetry store",
                      extra={"count": len(self._pending)})
        if self._store is not None and self._owns_store:
            self._store.close()
            self._store = None
