"""The fleet side of model updates: sign a version, publish the group's desired state (retained),
serve chunks on request, follow device status and drive the rollout (canary → all, or halt).

`UpdateServer(cfg, rollout, desired).run(stop, timeout_s)` is what `edgelens-fleet push` and
`edgelens-fleet rollout rollback` run. Requests for another rollout, from devices not targeted
yet, or malformed, are ignored and counted.

Everything a device sends is hostile until checked: statuses and chunk requests are parsed
strictly (`parse_status`, `parse_request`; NaN/Infinity refused) and one bad message is one
ignored message, never the end of the push. A device's group is the operator's
(`membership.Membership`: [fleet] groups_file), not what its status claims. Chunk requests are
deduplicated, capped and paced per device (`chunk_sender.ChunkSender`), so one small request
cannot make the fleet send a flood.

With `require_devices` (what `push` and `rollout rollback` use) a rollout to a group with no
devices ends before anything is published (`NoDevices`; with `wait_for_devices_s`, after
waiting that long for one): the group's devices are the groups file's list. Without a groups
file nothing is pushed or served (`Membership` refuses): what a device claims is never taken.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from cloud_sync import update_protocol as proto
from cloud_sync.errors import PayloadError, SyncError
from cloud_sync.fleet.chunk_sender import ChunkSender, ServerStats
from cloud_sync.fleet.device_input import valid_name
from cloud_sync.json_input import parse_json
from cloud_sync.fleet.membership import Membership
from cloud_sync.fleet.rollout import Rollout, RolloutFile, choose_canaries, decide, record_status
from cloud_sync.mqtt_client import LinkSettings, MqttLink
from cloud_sync.signing import TrustedKeys, load_private, sign

log = logging.getLogger(__name__)

_MAX_REQUEST_BYTES = 64 * 1024
_MAX_STATUS_BYTES = _MAX_REQUEST_BYTES * 16
_SAVE_EVERY_S = 0.5

# distinct chunks taken from one chunk request ([updates] window_chunks is at most 1024)
MAX_CHUNKS_PER_REQUEST = 1024


def signed_desired(directory: Path, key_path: str, chunk_size: int,
                   rollback: bool = False, shadow: bool = False) -> dict[str, Any]:
    """{"manifest": update manifest, "signature": {...}} for a version directory."""
    manifest = proto.update_manifest(directory, chunk_size, rollback=rollback, shadow=shadow)
    return {"manifest": manifest, "signature": sign(manifest, load_private(key_path))}


def load_signed(path: Path, directory: Path, trusted: TrustedKeys | None = None
                ) -> dict[str, Any]:
    """A version signed earlier (`edgelens-fleet sign`) from its file, checked as
    `check_signed` does."""
    try:
        signed = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SyncError(f"{path} is not a signed version (edgelens-fleet sign writes one): "
                        f"{exc}") from exc
    return check_signed(signed, directory, trusted, str(path))


def check_signed(signed: Any, directory: Path, trusted: TrustedKeys | None = None,
                 origin: str = "the signed manifest") -> dict[str, Any]:
    """{"manifest", "signature"} checked against the directory it is served from: same model,
    version and manifest, and every file, size, sha256 and chunk hash as signed, so the bytes
    served are the bytes signed. With `trusted`, the signature is checked too. SyncError
    saying what differs otherwise."""
    try:
        manifest, signature = signed["manifest"], signed["signature"]
        update = manifest["update"]
        chunk_size = int(update["chunk_size"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SyncError(f"{origin} is not a signed version (edgelens-fleet sign writes one): "
                        f"{exc}") from exc
    local = proto.update_manifest(directory, chunk_size)
    for key in sorted(set(local) | set(manifest)):
        if key != "update" and local.get(key) != manifest.get(key):
            raise SyncError(f"{origin} was signed for another manifest: {key!r} differs from "
                            f"{directory / 'manifest.json'}")
    signed_files = {f.get("file"): f for f in update.get("files", [])}
    local_files = {f["file"]: f for f in local["update"]["files"]}
    if set(signed_files) != set(local_files):
        raise SyncError(f"{origin} lists files {sorted(signed_files)}, {directory} holds "
                        f"{sorted(local_files)}")
    for name, entry in local_files.items():
        if signed_files[name] != entry:
            raise SyncError(f"{directory / name} changed since it was signed (size or hash "
                            f"differs from {origin})")
    if trusted is not None and len(trusted):
        trusted.verify(manifest, signature)
    return {"manifest": manifest, "signature": signature}


# --- what devices send ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ChunkRequest:
    rollout: str
    file: str
    chunks: list[int]               # distinct, in the order asked, at most the per-request cap


def parse_request(payload: bytes) -> tuple[ChunkRequest, int]:
    """A chunk request from a device, and how many of its chunk entries were dropped (repeats,
    not an index, over MAX_CHUNKS_PER_REQUEST). PayloadError when it is not a request."""
    body = parse_json(payload, "chunk request", _MAX_REQUEST_BYTES)
    rollout, file, chunks = body.get("rollout"), body.get("file"), body.get("chunks")
    if not isinstance(rollout, str) or not isinstance(file, str) or \
            not isinstance(chunks, list):
        raise PayloadError("chunk request needs rollout and file (strings) and chunks (a "
                           "list)")
    wanted = list(dict.fromkeys(c for c in chunks
                                if isinstance(c, int) and not isinstance(c, bool) and c >= 0))
    kept = wanted[:MAX_CHUNKS_PER_REQUEST]
    return ChunkRequest(rollout, file, kept), len(chunks) - len(kept)


def parse_status(payload: bytes) -> tuple[Any, dict[str, Any]]:
    """(claimed group, models) of a device's update status; PayloadError when `models` is not
    an object. Each model's entry is reduced to typed fields by rollout.record_status."""
    body = parse_json(payload, "update status", _MAX_STATUS_BYTES)
    models = body.get("models", {})
    if models is None:
        models = {}
    if not isinstance(models, dict):
        raise PayloadError(f"update status models must be an object, not "
                           f"{type(models).__name__}")
    return body.get("group"), models


class NoDevices(SyncError):
    """A rollout's group has no devices: nothing was published."""


# --- from paho's thread to the serving loop ------------------------------------------------------

class Inbox:
    """Messages from paho's thread to the serving loop, at most `limit_bytes` of payload
    waiting (a flood is dropped and counted here, not queued without bound; retained statuses
    of a large fleet at start fit easily)."""

    def __init__(self, limit_bytes: int = 64 * 1024 * 1024, batch: int = 500):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._bytes = 0
        self.limit_bytes, self.batch = limit_bytes, batch
        self.dropped = 0

    def on_message(self, topic: str, payload: bytes, _props: Any = None) -> None:
        size = len(payload) + len(topic)
        with self._lock:
            if self._bytes + size > self.limit_bytes:
                self.dropped += 1
                dropped = self.dropped
            else:
                self._bytes += size
                dropped = 0
        if not dropped:
            self._queue.put((topic, payload))
        elif dropped in (1, 10, 100) or dropped % 1000 == 0:
            log.warning("inbox full: messages dropped",
                        extra={"waiting_bytes": self._bytes, "dropped": dropped})

    def put(self, item: tuple[str, bytes]) -> None:
        self.on_message(*item)

    def take(self, wait: float) -> list[tuple[str, bytes]]:
        """Up to `batch` messages, waiting at most `wait` s for the first."""
        try:
            items = [self._queue.get(timeout=wait)]
        except queue.Empty:
            return []
        while len(items) < self.batch:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        with self._lock:
            self._bytes -= sum(len(p) + len(t) for t, p in items)
        return items


def handle_safely(handler: Callable[[str, bytes], None], topic: str, payload: bytes,
                  stats: ServerStats) -> None:
    """One message from the network: PayloadError (and anything else a hostile message may
    raise) is counted and logged in one line; it never ends the caller's loop."""
    try:
        handler(topic, payload)
    except PayloadError as exc:
        stats.ignored_requests += 1
        log.debug("ignored a message", extra={"topic": topic, "error": str(exc)})
    except Exception as exc:  # noqa: BLE001  hostile input: one line, not a traceback
        stats.ignored_requests += 1
        log.warning("ignored a message", extra={
            "topic": topic[:200], "error": f"{type(exc).__name__}: {str(exc)[:200]}"})


class UpdateServer:
    def __init__(self, cfg: Any, rollout: Rollout, signed: dict[str, Any],
                 rollout_file: RolloutFile, discover_s: float = 1.0,
                 control_key: str | Path | None = None, require_devices: bool = False,
                 wait_for_devices_s: float = 0.0,
                 notify: Callable[[str], None] | None = None):
        self.cfg, self.rollout, self.signed = cfg, rollout, signed
        # refuse (NoDevices) a group without devices instead of publishing and waiting
        self.require_devices, self.wait_for_devices_s = require_devices, wait_for_devices_s
        # notices for the operator: printed by `notify` when given, else logged (see _tell)
        self.notify = notify
        # with the signing key at hand the control fields (stage, canaries, halt) are signed
        # too, so that only the fleet can change what a device does with a download
        self.control_key = load_private(control_key) if control_key else None
        self.file, self.discover_s = rollout_file, discover_s
        self.prefix = cfg.mqtt.topic_prefix
        self.source = Path(rollout.source)
        self.chunk_size = int(signed["manifest"]["update"]["chunk_size"])
        self.files = {f["file"]: f for f in signed["manifest"]["update"]["files"]}
        self.stats = ServerStats()
        self.membership = Membership(cfg.fleet.groups_file)
        self.inbox = Inbox()
        settings = LinkSettings.from_config(cfg.mqtt, f"edgelens-fleet-updates-{os.getpid()}")
        self.link = MqttLink(settings, on_message=self.inbox.on_message)
        self.sender = ChunkSender(self.link, self.prefix, self.stats)
        self.link.subscribe(f"{self.prefix}/+/{proto.UPDATE}/request")
        self.link.subscribe(f"{self.prefix}/+/{proto.UPDATE}/status")
        self._desired_topic = proto.desired_topic(self.prefix, rollout.group, rollout.name)

    # --- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event, timeout_s: float = 3600.0) -> Rollout:
        """Drive the rollout until it is done or halted, `stop` is set, or the timeout."""
        self.link.start_connected(10)
        try:
            self._discover(stop)
            if self.require_devices and not stop.is_set():
                self._await_devices(stop)
            r = self.rollout
            if r.stage == "canary":
                r.canaries = choose_canaries(r.members, r.canary_percent)
            self._publish_desired()
            deadline = time.monotonic() + timeout_s
            saved = 0.0
            while not stop.is_set() and time.monotonic() < deadline:
                self._drain(0.1)
                change = decide(r)
                if change is not None:
                    self._advance(*change)
                now = time.monotonic()
                if now - saved >= _SAVE_EVERY_S:
                    self.file.save(r)
                    saved = now
                if r.stage in ("done", "halted"):
                    break
            if r.stage not in ("done", "halted"):
                r.reason = r.reason or ("stopped" if stop.is_set() else "timed out")
            r.bytes_served = dict(r.bytes_served)
            self.file.save(r)
            return r
        finally:
            self.link.stop()

    def _discover(self, stop: threading.Event) -> None:
        """Collect retained device statuses: the group's members."""
        end = time.monotonic() + self.discover_s
        while not stop.is_set() and time.monotonic() < end:
            self._drain(0.05)

    def _members(self) -> tuple[list[str], str]:
        """The group's devices, and where that comes from."""
        return self.membership.listed(self.rollout.group), f"in {self.membership.path}"

    def _await_devices(self, stop: threading.Event) -> None:
        """NoDevices unless the group has a device (after waiting wait_for_devices_s for one
        when it has none); nothing has been published yet."""
        members, where = self._members()
        if members:
            if not set(members) & set(self.rollout.members):
                shown = f"{', '.join(members[:5])}{', ...' if len(members) > 5 else ''}"
                self._tell(f"none of the {len(members)} device(s) of group "
                           f"{self.rollout.group!r} {where} has reported yet ({shown}); the "
                           "push waits for them (--timeout) and the desired state stays "
                           "retained for them",
                           "no device of the group has reported yet; the push waits for them",
                           {"group": self.rollout.group, "count": len(members),
                            "devices": shown, "groups_file": str(self.membership.path)})
            return
        r = self.rollout
        if self.wait_for_devices_s > 0:
            self._tell(f"group {r.group!r} has no devices yet ({self._no_devices_why()}); "
                       f"waiting up to {self.wait_for_devices_s:g} s for one (a device "
                       f"whose edgelens-sync runs with [updates] group = {r.group!r})",
                       "group has no devices yet; waiting for one",
                       {"group": r.group, "groups_file": str(self.membership.path),
                        "wait_s": self.wait_for_devices_s})
            end = time.monotonic() + self.wait_for_devices_s
            while not stop.is_set() and time.monotonic() < end:
                self._drain(0.1)
                members, where = self._members()
                if members:
                    self._tell(f"group {r.group!r}: {', '.join(members)} {where}; "
                               "starting the rollout",
                               "group has devices now; starting the rollout",
                               {"group": r.group, "devices": ", ".join(members),
                                "groups_file": str(self.membership.path)})
                    return
            if stop.is_set():
                raise NoDevices(f"stopped while waiting for a device of group {r.group!r}: "
                                "nothing was published")
        raise NoDevices(f"group {r.group!r} has no devices ({self._no_devices_why()}), so "
                        "nothing was published: no desired state is left on the broker. "
                        f"List a device in it in {self.membership.path} (and start its "
                        f"edgelens-sync with [updates] group = {r.group!r}), or pass "
                        "--wait-for-devices [SECONDS] to wait for one")

    def _tell(self, text: str, event: str, fields: dict[str, Any]) -> None:
        """A notice for the operator: `text` to `notify` when the caller prints its own
        (push, rollout rollback), else a warning logged as `event` with `fields`."""
        if self.notify is not None:
            self.notify(text)
        else:
            log.warning(event, extra=fields)

    def _no_devices_why(self) -> str:
        return f"{self.membership.path} lists none in it"

    def _drain(self, wait: float) -> None:
        for topic, payload in self.inbox.take(wait):
            handle_safely(self._dispatch, topic, payload, self.stats)
        self.sender.pump()

    def _dispatch(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) != 4 or parts[0] != self.prefix or parts[2] != proto.UPDATE or \
                not valid_name(parts[1]):
            raise PayloadError(f"unexpected topic {topic!r}")
        device, leaf = parts[1], parts[3]
        if leaf == "status":
            self._on_status(device, payload)
        elif leaf == "request":
            self._on_request(device, payload)

    # --- device status -----------------------------------------------------------------------

    def _on_status(self, device: str, payload: bytes) -> None:
        if not payload:
            return
        claimed, models = parse_status(payload)
        self.stats.status_messages += 1
        r = self.rollout
        group = self.membership.group_of(device)
        if self.membership.mismatch(device, claimed, group):
            self.stats.group_mismatches += 1
        if group != r.group:
            return
        entry = models.get(r.name)
        if isinstance(entry, dict):
            record_status(r, device, entry)
        elif device not in r.members:
            r.members.append(device)

    # --- chunks ------------------------------------------------------------------------------

    def _on_request(self, device: str, payload: bytes) -> None:
        request, dropped = parse_request(payload)
        r = self.rollout
        if request.rollout != r.id or device not in r.targets() or \
                request.file not in self.files:
            raise PayloadError(f"request from {device} not for this rollout or stage")
        self.stats.ignored_chunks += dropped
        self.sender.request(device, r, self.source, self.files[request.file],
                            self.chunk_size, request.chunks)

    # --- stages ------------------------------------------------------------------------------

    def _advance(self, stage: str, reason: str) -> None:
        r = self.rollout
        log.info("rollout stage changed", extra={"rollout": r.id, "from_stage": r.stage,
                                                 "to_stage": stage, "reason": reason})
        r.stage, r.reason = stage, reason
        if stage in ("done", "halted"):
            r.finished_ns = time.time_ns()
        if stage != "done":
            self._publish_desired()
        self.file.save(r)

    def desired(self) -> dict[str, Any]:
        r = self.rollout
        return proto.desired_message(r.id, r.group, r.stage, r.canaries, self.signed,
                                     self.control_key)

    def _publish_desired(self) -> None:
        body = json.dumps(self.desired(), separators=(",", ":")).encode()
        self.link.publish(self._desired_topic, body, qos=1, retain=True)
