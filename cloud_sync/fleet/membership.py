"""Which group a device is in, for pushing and serving updates: the operator's groups file
([fleet] groups_file, the one the broker ACL is written from), never what a device's status
claims. Without the file there is no membership (SyncError `NO_GROUPS_FILE`): nothing is pushed
or served on a device's word.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from cloud_sync.errors import SyncError
from cloud_sync.fleet.acl import load_groups

log = logging.getLogger(__name__)


NO_GROUPS_FILE = ("no [fleet] groups_file: a device's group comes from the operator's groups "
                  "file (the one the broker ACL is written from), never from what its status "
                  "claims; set [fleet] groups_file in the config")


class Membership:
    """Which group a device is in: the operator's groups file ([fleet] groups_file, re-read
    when it changes), whatever the device's status says; a device claiming another group is
    counted and ignored. There is no membership without the file (SyncError): a claim is
    never taken, so that one device cannot make itself a canary and halt a rollout."""

    RELOAD_EVERY_S = 1.0

    def __init__(self, groups_file: str | Path | None):
        if not groups_file:
            raise SyncError(NO_GROUPS_FILE)
        self.path = Path(groups_file)
        self.owner: dict[str, str] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._warned: set[str] = set()
        self._load()

    def group_of(self, device: str) -> str | None:
        self._reload_when_due()
        return self.owner.get(device)

    def _reload_when_due(self) -> None:
        now = time.monotonic()
        if now - self._checked >= self.RELOAD_EVERY_S:
            self._checked = now
            try:
                self._load()
            except SyncError as exc:
                log.error("groups file not reloaded; keeping the groups read before",
                          extra={"error": str(exc)})

    def listed(self, group: str) -> list[str]:
        """The devices the groups file puts in `group` (re-read when it changed)."""
        self._reload_when_due()
        return sorted(d for d, g in self.owner.items() if g == group)

    def mismatch(self, device: str, claimed: Any, group: str | None) -> bool:
        """True (logged once per device) when a device claims a group it is not in."""
        if claimed is None or claimed == group:
            return False
        if device not in self._warned:
            self._warned.add(device)
            log.warning("device claims a group the groups file does not put it in: claim "
                        "ignored", extra={"device": device, "claimed": repr(claimed)[:70],
                                          "groups_file": str(self.path),
                                          "group": group or "no group"})
        return True

    def _load(self) -> None:
        try:
            st = self.path.stat()
        except OSError as exc:
            raise SyncError(f"groups file {self.path}: {exc}") from exc
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        groups = load_groups(self.path)
        self.owner = {device: group for group, devices in groups.items() for device in devices}
        self._stamp = stamp
