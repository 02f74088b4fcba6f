"""The fleet side of model updates: sign a version, publish the group's desired state (retained),
serve chunks on request, follow device status and drive the rollout (canary → all, or halt).

`UpdateServer(cfg, rollout, desired).run(stop, timeout_s)` is what `edgelens-fleet push` and
`edgelens-fleet rollout rollback` run. Requests for another rollout, from devices not targeted
yet, or malformed, are ignored and counted.
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
from typing import Any

from cloud_sync import update_protocol as proto
from cloud_sync.errors import LinkError, PayloadError, SyncError
from cloud_sync.mqtt_client import LinkSettings, MqttLink
from cloud_sync.rollout import Rollout, RolloutFile, choose_canaries, decide, record_status
from cloud_sync.signing import TrustedKeys, load_private, sign

log = logging.getLogger(__name__)

_MAX_REQUEST_BYTES = 64 * 1024
_SAVE_EVERY_S = 0.5


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


@dataclass
class ServerStats:
    chunks_served: int = 0
    bytes_served: int = 0
    ignored_requests: int = 0
    status_messages: int = 0


def send_chunks(link: MqttLink, prefix: str, device: str, rollout: Rollout, source: Path,
                plan: dict[str, Any], chunk_size: int, chunks: Any, stats: ServerStats) -> int:
    """Publish the requested chunks of one file to the device's chunk topic; → bytes sent.
    Indices out of range are counted as ignored; PayloadError when `chunks` is not a list."""
    if not isinstance(chunks, list):
        raise PayloadError("chunks must be a list")
    topic = proto.device_update_topic(prefix, device, "chunk")
    sent = 0
    with open(source / plan["file"], "rb") as handle:
        for index in chunks:
            if not isinstance(index, int) or not 0 <= index < len(plan["chunks"]):
                stats.ignored_requests += 1
                continue
            handle.seek(index * chunk_size)
            data = handle.read(chunk_size)
            header = proto.ChunkHeader(rollout.id, rollout.name, rollout.version, plan["file"],
                                       index)
            try:
                link.publish(topic, proto.encode_chunk(header, data), qos=1)
            except LinkError as exc:
                log.warning("chunk not sent to %s: %s", device, exc)
                break
            stats.chunks_served += 1
            stats.bytes_served += len(data)
            sent += len(data)
    return sent


class UpdateServer:
    def __init__(self, cfg: Any, rollout: Rollout, signed: dict[str, Any],
                 rollout_file: RolloutFile, discover_s: float = 1.0):
        self.cfg, self.rollout, self.signed = cfg, rollout, signed
        self.file, self.discover_s = rollout_file, discover_s
        self.prefix = cfg.mqtt.topic_prefix
        self.source = Path(rollout.source)
        self.chunk_size = int(signed["manifest"]["update"]["chunk_size"])
        self.files = {f["file"]: f for f in signed["manifest"]["update"]["files"]}
        self.stats = ServerStats()
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        settings = LinkSettings.from_config(cfg.mqtt, f"edgelens-fleet-updates-{os.getpid()}")
        self.link = MqttLink(settings, on_message=lambda t, p, _props: self.inbox.put((t, p)))
        self.link.subscribe(f"{self.prefix}/+/{proto.UPDATE}/request")
        self.link.subscribe(f"{self.prefix}/+/{proto.UPDATE}/status")
        self._desired_topic = proto.desired_topic(self.prefix, rollout.group, rollout.name)

    # --- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event, timeout_s: float = 3600.0) -> Rollout:
        """Drive the rollout until it is done or halted, `stop` is set, or the timeout."""
        self.link.start_connected(10)
        try:
            self._discover(stop)
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

    def _drain(self, wait: float) -> None:
        try:
            topic, payload = self.inbox.get(timeout=wait)
        except queue.Empty:
            return
        while True:
            try:
                self._dispatch(topic, payload)
            except PayloadError as exc:
                self.stats.ignored_requests += 1
                log.debug("ignored %s: %s", topic, exc)
            try:
                topic, payload = self.inbox.get_nowait()
            except queue.Empty:
                return

    def _dispatch(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) != 4 or parts[0] != self.prefix or parts[2] != proto.UPDATE:
            raise PayloadError(f"unexpected topic {topic}")
        device, leaf = parts[1], parts[3]
        if leaf == "status":
            self._on_status(device, payload)
        elif leaf == "request":
            self._on_request(device, payload)

    # --- device status -----------------------------------------------------------------------

    def _on_status(self, device: str, payload: bytes) -> None:
        if not payload:
            return
        body = proto.parse_json(payload, "status", _MAX_REQUEST_BYTES * 16)
        self.stats.status_messages += 1
        r = self.rollout
        if body.get("group") != r.group:
            return
        entry = (body.get("models") or {}).get(r.name)
        if isinstance(entry, dict):
            record_status(r, device, entry)
        elif device not in r.members:
            r.members.append(device)

    # --- chunks ------------------------------------------------------------------------------

    def _on_request(self, device: str, payload: bytes) -> None:
        body = proto.parse_json(payload, "chunk request", _MAX_REQUEST_BYTES)
        r = self.rollout
        if body.get("rollout") != r.id or device not in r.targets() or \
                body.get("file") not in self.files:
            raise PayloadError(f"request from {device} not for this rollout or stage")
        sent = send_chunks(self.link, self.prefix, device, r, self.source,
                           self.files[body["file"]], self.chunk_size, body.get("chunks"),
                           self.stats)
        r.bytes_served[device] = r.bytes_served.get(device, 0) + sent

    # --- stages ------------------------------------------------------------------------------

    def _advance(self, stage: str, reason: str) -> None:
        r = self.rollout
        log.info("rollout %s: %s → %s (%s)", r.id, r.stage, stage, reason)
        r.stage, r.reason = stage, reason
        if stage in ("done", "halted"):
            r.finished_ns = time.time_ns()
        if stage != "done":
            self._publish_desired()
        self.file.save(r)

    def desired(self) -> dict[str, Any]:
        r = self.rollout
        return {"v": 1, "rollout": r.id, "group": r.group, "stage": r.stage,
                "canaries": r.canaries, **self.signed}

    def _publish_desired(self) -> None:
        body = json.dumps(self.desired(), separators=(",", ":")).encode()
        self.link.publish(self._desired_topic, body, qos=1, retain=True)
