"""`edgelens-fleet serve`: chunks for devices that come back after a push has ended.

A push drives its rollout and serves its chunks while it runs. The group's desired state stays
retained on the broker after it ends, so a device that was offline for the whole push learns it
on reconnect and asks for chunks: this long-running service answers them.

It takes the desired states from the broker (retained: exactly what the devices see) and the
version's files from the rollout file's `source`, after checking every file against the signed
hashes. It serves a rollout only while that rollout is still its group's desired state and no
push drives it any more: stage `done`, or `canary`/`all` left by a push that was stopped or
timed out (then only to the devices that stage targets). A halted rollout is not served. The
statuses of late devices are written to the rollout file, so `edgelens-fleet rollout status`
shows them catching up.

Device messages are checked as a push checks them (delivery: strict parsing; membership: the
group from the groups file; chunk_sender: chunk requests deduplicated, capped and paced per
device); a bad one is counted and ignored and never ends the service.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud_sync import update_protocol as proto
from cloud_sync.errors import PayloadError, SyncError
from cloud_sync.fleet.device_input import valid_name
from cloud_sync.mqtt_client import LinkSettings, MqttLink
from cloud_sync.fleet.rollout import Rollout, RolloutFile, record_status
from cloud_sync.signing import TrustedKeys
from cloud_sync.fleet.chunk_sender import ChunkSender, ServerStats
from cloud_sync.fleet.delivery import (Inbox, check_signed, handle_safely, parse_request,
                                       parse_status)
from cloud_sync.fleet.membership import Membership

log = logging.getLogger(__name__)

_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
_ENDED_BY_PUSH = ("stopped", "timed out")


def servable(r: Rollout) -> bool:
    return r.stage == "done" or (r.stage in ("canary", "all") and r.reason in _ENDED_BY_PUSH)


@dataclass
class Served:
    rollout: Rollout
    files: dict[str, dict[str, Any]]
    chunk_size: int
    dirty: bool = False


class RolloutService:
    def __init__(self, cfg: Any, rollout_file: RolloutFile, refresh_s: float = 2.0):
        self.prefix = cfg.mqtt.topic_prefix
        self.file, self.refresh_s = rollout_file, refresh_s
        self.trusted = TrustedKeys.from_files(list(cfg.updates.trusted_keys))
        self.stats = ServerStats()
        self.desired: dict[tuple[str, str], dict[str, Any]] = {}   # (group, model) → body
        self.served: dict[str, Served] = {}                        # rollout id → what we serve
        self.refused: set[str] = set()                             # rollout ids we cannot serve
        self.membership = Membership(cfg.fleet.groups_file)
        self.inbox = Inbox()
        settings = LinkSettings.from_config(cfg.mqtt, f"edgelens-fleet-serve-{os.getpid()}")
        self.link = MqttLink(settings, on_message=self.inbox.on_message)
        self.sender = ChunkSender(self.link, self.prefix, self.stats, on_sent=self._sent)
        self.link.subscribe(f"{self.prefix}/{proto.GROUP_LEVEL}/+/desired/+")
        self.link.subscribe(f"{self.prefix}/+/{proto.UPDATE}/request")
        self.link.subscribe(f"{self.prefix}/+/{proto.UPDATE}/status")

    def run(self, stop: threading.Event) -> None:
        self.link.start_connected(10)
        refreshed = 0.0
        try:
            while not stop.is_set():
                for topic, payload in self.inbox.take(0.1):
                    handle_safely(self._dispatch, topic, payload, self.stats)
                self.sender.pump()
                now = time.monotonic()
                if now - refreshed >= self.refresh_s:
                    self._refresh()
                    refreshed = now
        finally:
            self._save()
            self.link.stop()

    # --- what to serve -----------------------------------------------------------------------

    def _refresh(self) -> None:
        """Match the current desired states with the rollout file; save late devices."""
        self._save()
        try:
            rollouts = {r.id: r for r in self.file.load()}
        except SyncError as exc:
            log.error("rollout file unreadable", extra={"error": str(exc)})
            return
        current = {body.get("rollout") for body in self.desired.values()}
        for rid in list(self.served):
            r = rollouts.get(rid)
            if rid not in current or r is None or not servable(r):
                log.info("no longer serving rollout", extra={"rollout": rid})
                del self.served[rid]
                self.sender.drop(rid)
        for body in self.desired.values():
            rid = body.get("rollout")
            r = rollouts.get(rid)
            if rid in self.served or rid in self.refused or r is None or not servable(r):
                continue
            try:
                signed = check_signed(body, Path(r.source), self.trusted, f"rollout {rid}")
            except SyncError as exc:    # SignatureError included
                log.error("rollout cannot be served", extra={"rollout": rid, "error": str(exc)})
                self.refused.add(rid)
                continue
            update = signed["manifest"]["update"]
            self.served[rid] = Served(r, {f["file"]: f for f in update["files"]},
                                      int(update["chunk_size"]))
            log.info("serving rollout", extra={"rollout": rid, "model": r.name,
                                               "version": r.version, "group": r.group})

    def _save(self) -> None:
        for served in self.served.values():
            if served.dirty:
                self.file.save(served.rollout)
                served.dirty = False

    # --- messages ----------------------------------------------------------------------------

    def _dispatch(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) == 5 and parts[0] == self.prefix and parts[1] == proto.GROUP_LEVEL:
            self._on_desired(parts[2], parts[4], payload)
            return
        if len(parts) != 4 or parts[0] != self.prefix or parts[2] != proto.UPDATE or \
                not valid_name(parts[1]):
            raise PayloadError(f"unexpected topic {topic!r}")
        if parts[3] == "status":
            self._on_status(parts[1], payload)
        elif parts[3] == "request":
            self._on_request(parts[1], payload)

    def _on_desired(self, group: str, model: str, payload: bytes) -> None:
        if not payload:
            self.desired.pop((group, model), None)
            return
        body = proto.parse_json(payload, "desired state", _MAX_MESSAGE_BYTES)
        if not isinstance(body.get("rollout"), str):
            raise PayloadError(f"desired state of {group}/{model} names no rollout")
        self.desired[(group, model)] = body

    def _on_status(self, device: str, payload: bytes) -> None:
        if not payload:
            return
        claimed, models = parse_status(payload)
        group = self.membership.group_of(device)
        if self.membership.mismatch(device, claimed, group):
            self.stats.group_mismatches += 1
        if group is None:
            return
        for served in self.served.values():
            r = served.rollout
            entry = models.get(r.name)
            if r.group != group or not isinstance(entry, dict):
                continue
            record_status(r, device, entry)
            served.dirty = True

    def _on_request(self, device: str, payload: bytes) -> None:
        request, dropped = parse_request(payload)
        served = self.served.get(request.rollout)
        if served is None:
            return                      # not ours: a running push answers it, or nobody should
        r = served.rollout
        allowed = r.canaries if r.stage == "canary" else None
        group = self.membership.group_of(device)   # the file may have changed since its status
        if group != r.group or (allowed is not None and device not in allowed):
            raise PayloadError(f"request from {device} for rollout {r.id} of group {r.group}")
        plan = served.files.get(request.file)
        if plan is None:
            raise PayloadError(f"request from {device} for a file not in rollout {r.id}")
        self.stats.ignored_chunks += dropped
        self.sender.request(device, r, Path(r.source), plan, served.chunk_size,
                            request.chunks)

    def _sent(self, rollout: Rollout, device: str, nbytes: int) -> None:
        served = self.served.get(rollout.id)
        if served is not None:
            served.dirty = True

