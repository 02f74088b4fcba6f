"""Answering devices' chunk requests for a model update, shared by `push` (`UpdateServer`) and
`serve` (`RolloutService`): the chunks asked for are queued per device without repeats and
within a cap, and published at a per-device pace (token bucket), so one small request cannot
make the fleet send a flood. `ServerStats` counts what either server served and ignored.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from cloud_sync import update_protocol as proto
from cloud_sync.errors import LinkError
from cloud_sync.fleet.rollout import Rollout
from cloud_sync.mqtt_client import MqttLink

log = logging.getLogger(__name__)

# chunks queued per device, and the per-device pace (token bucket, bytes)
MAX_PENDING_PER_DEVICE = 1024
DEVICE_RATE_BYTES_S = 4 * 1024 * 1024
DEVICE_BURST_BYTES = 8 * 1024 * 1024


@dataclass
class ServerStats:
    chunks_served: int = 0
    bytes_served: int = 0
    ignored_requests: int = 0
    status_messages: int = 0
    ignored_chunks: int = 0          # repeated, out of range or over the caps
    throttled: int = 0               # times a device's queue waited for its byte budget
    group_mismatches: int = 0        # statuses naming a group the groups file does not


@dataclass
class _Pending:
    rollout: Rollout
    source: Path
    plan: dict[str, Any]
    chunk_size: int
    index: int

    @property
    def size(self) -> int:
        return max(0, min(self.chunk_size, int(self.plan["size_bytes"]) -
                          self.index * self.chunk_size))


class ChunkSender:
    """Chunks asked for by devices, queued per device without repeats (at most
    `max_pending`), and published at most `rate` bytes/s per device after a `burst` (token
    bucket). A device that asks for chunk 0 twenty thousand times gets it once; one that floods
    requests gets its pace, not more. `pump()` sends what the budgets allow."""

    def __init__(self, link: MqttLink, prefix: str, stats: ServerStats, *,
                 rate_bytes_s: float = DEVICE_RATE_BYTES_S,
                 burst_bytes: float = DEVICE_BURST_BYTES,
                 max_pending: int = MAX_PENDING_PER_DEVICE,
                 on_sent: Callable[[Rollout, str, int], None] | None = None):
        self.link, self.prefix, self.stats = link, prefix, stats
        self.rate, self.burst, self.max_pending = rate_bytes_s, burst_bytes, max_pending
        self.on_sent = on_sent
        self.pending: dict[str, OrderedDict[tuple[str, str, int], _Pending]] = {}
        self._tokens: dict[str, tuple[float, float]] = {}     # device → (tokens, at)

    def request(self, device: str, rollout: Rollout, source: Path, plan: dict[str, Any],
                chunk_size: int, chunks: list[int]) -> int:
        """Queue the chunks of one file a device asked for; → how many were queued."""
        queue_ = self.pending.setdefault(device, OrderedDict())
        queued = 0
        for index in chunks:
            key = (rollout.id, plan["file"], index)
            if not 0 <= index < len(plan["chunks"]) or key in queue_ or \
                    len(queue_) >= self.max_pending:
                self.stats.ignored_chunks += 1
                continue
            queue_[key] = _Pending(rollout, source, plan, chunk_size, index)
            queued += 1
        if not queue_:
            del self.pending[device]
        return queued

    def pump(self) -> None:
        now = time.monotonic()
        for device in list(self.pending):
            queue_ = self.pending[device]
            tokens, at = self._tokens.get(device, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            while queue_:
                key, item = next(iter(queue_.items()))
                if item.size > tokens:
                    self.stats.throttled += 1
                    break
                del queue_[key]
                sent = self._send(device, item)
                if sent is None:             # not connected: it asks again after reconnecting
                    queue_.clear()
                    break
                tokens -= sent
            self._tokens[device] = (tokens, now)
            if not queue_:
                del self.pending[device]

    def drop(self, rollout_id: str) -> None:
        """Forget queued chunks of a rollout no longer served."""
        for device in list(self.pending):
            queue_ = self.pending[device]
            for key in [k for k in queue_ if k[0] == rollout_id]:
                del queue_[key]
            if not queue_:
                del self.pending[device]

    def _send(self, device: str, item: _Pending) -> int | None:
        r = item.rollout
        try:
            with open(item.source / item.plan["file"], "rb") as handle:
                handle.seek(item.index * item.chunk_size)
                data = handle.read(item.chunk_size)
        except OSError as exc:
            log.warning("chunk not read", extra={"chunk": item.index, "file": item.plan["file"],
                                                 "error": str(exc)})
            return 0
        header = proto.ChunkHeader(r.id, r.name, r.version, item.plan["file"], item.index)
        try:
            self.link.publish(proto.device_update_topic(self.prefix, device, "chunk"),
                              proto.encode_chunk(header, data), qos=1)
        except LinkError as exc:
            log.warning("chunk not sent", extra={"device": device, "error": str(exc)})
            return None
        self.stats.chunks_served += 1
        self.stats.bytes_served += len(data)
        r.bytes_served[device] = r.bytes_served.get(device, 0) + len(data)
        if self.on_sent is not None:
            self.on_sent(r, device, len(data))
        return len(data)
