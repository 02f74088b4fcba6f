"""Telemetry batches on their way to the broker: take the next unsent records from the telemetry
store, encode them as one compressed batch, pace it (`TokenBucket`, [sync] max_bytes_per_s),
publish it QoS 1 and keep it in flight (at most [sync] max_inflight) until its PUBACK marks its
records sent — as waiting for the fleet's receipt when the fleet confirms — or until
[sync] ack_timeout_s passed, after which they go again. A batch the broker refused pauses
sending for [sync] retry_delay_s. `Outbox` is owned by SyncAgent (cloud_sync/sync_agent.py),
which runs the loop, knows whether the fleet confirms and hands over the acknowledgements paho
reports.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from cloud_sync import batch as batch_codec
from cloud_sync.errors import LinkError
from cloud_sync.mqtt_client import NO_MATCHING_SUBSCRIBERS
from device.errors import TelemetryError

log = logging.getLogger(__name__)


@dataclass
class _Inflight:
    seqs: list[int]
    sent_at: float
    size: int


class OutboxCounters(Protocol):
    """The sync agent's counters an Outbox adds to (sync_agent.SyncStats)."""
    published_batches: int
    acked_batches: int
    acked_records: int
    sent_bytes: int
    refused_batches: int
    timed_out_batches: int
    confirmed_records: int


class TokenBucket:
    """Bytes per second with one second of burst; rate 0 means no cap. `clock`: monotonic
    seconds (a test passes one that moves only when waited on)."""

    def __init__(self, rate: int, clock: Callable[[], float] = time.monotonic):
        self.rate, self._clock = rate, clock
        self._tokens = float(rate)
        self._at = clock()

    def wait(self, size: int, stop: threading.Event) -> bool:
        """Block until `size` bytes may go (False when stopped first)."""
        if self.rate <= 0:
            return True
        while not stop.is_set():
            now = self._clock()
            self._tokens = min(float(max(self.rate, size)),
                               self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= size:
                self._tokens -= size
                return True
            stop.wait((size - self._tokens) / self.rate)
        return False


class Outbox:
    """The batches in flight, by MQTT message id. `noisy(key, event, fields)` logs a repeating
    warning at most every 30 s (SyncAgent._noisy). Everything but `note_ack` runs on the sync
    agent's loop."""

    def __init__(self, link: Any, sync: Any, device: str, topic: str, stats: OutboxCounters,
                 noisy: Callable[[str, str, dict[str, Any]], None]):
        self.link, self.sync, self.device, self.topic = link, sync, device, topic
        self.stats, self._noisy = stats, noisy
        self.inflight: dict[int, _Inflight] = {}
        self.early: set[int] = set()    # in flight, and the fleet's receipt came first
        self._acks: list[tuple[int, int]] = []
        self._acks_lock = threading.Lock()
        self._paused_until = 0.0
        self._bucket = TokenBucket(sync.max_bytes_per_s)

    def has_room(self) -> bool:
        """False while max_inflight batches are unacknowledged or after a refusal's pause."""
        return not (len(self.inflight) >= self.sync.max_inflight
                    or time.monotonic() < self._paused_until)

    def send_one(self, store: Any, stop: threading.Event) -> bool:
        """Publish one batch of the next unsent records not in flight; False when there was
        nothing to send, the store could not be read or the batch not published."""
        skip = [s for entry in self.inflight.values() for s in entry.seqs]
        try:
            records = store.unsent(self.sync.batch_records, self.sync.batch_bytes, skip)
        except TelemetryError as exc:
            self._noisy("read", "cannot read telemetry store", {"error": str(exc)})
            return False
        except Exception as exc:  # sqlite3 errors while the pipeline swaps the file
            self._noisy("read", "cannot read telemetry store",
                        {"error": f"{type(exc).__name__}: {exc}"})
            return False
        if not records:
            return False
        payload = batch_codec.encode(self.device, store.clock.boot_id, store.clock.now(),
                                     records, self.sync.compress_level)
        if not self._bucket.wait(len(payload), stop):
            return False
        try:
            mid = self.link.publish(self.topic, payload, qos=1,
                                    content_type=batch_codec.CONTENT_TYPE)
        except LinkError as exc:
            self._noisy("publish", "telemetry batch not published", {"error": str(exc)})
            return False
        self.inflight[mid] = _Inflight([r.seq for r in records], time.monotonic(),
                                       len(payload))
        self.stats.published_batches += 1
        return True

    def note_ack(self, mid: int, reason: int) -> None:
        """paho's network thread: only note it; `collect_acks` marks records sent."""
        with self._acks_lock:
            self._acks.append((mid, reason))

    def collect_acks(self, store: Any, receipt_wait: float) -> None:
        """The acknowledgements noted since the last call: a refused batch pauses sending (its
        records go again), a taken one has its records marked sent — those whose receipt came
        first as confirmed, the others waiting `receipt_wait` s for theirs (0: no wait)."""
        with self._acks_lock:
            acks, self._acks = self._acks, []
        for mid, reason in acks:
            entry = self.inflight.pop(mid, None)
            if entry is None:
                continue  # status/availability messages, or a batch already given up on
            refused = reason >= 0x80 or (reason == NO_MATCHING_SUBSCRIBERS
                                         and self.sync.require_subscriber)
            if refused:
                self.stats.refused_batches += 1
                self._paused_until = time.monotonic() + self.sync.retry_delay_s
                self._noisy("refused", "broker did not take a batch; resending it", {
                    "reason": f"0x{reason:02x}" + (", no fleet ingest subscribed"
                                                   if reason == NO_MATCHING_SUBSCRIBERS
                                                   else ""),
                    "retry_in_s": self.sync.retry_delay_s})
                continue
            early = [s for s in entry.seqs if s in self.early]
            self.early.difference_update(early)
            try:
                if early:
                    store.mark_sent(early)     # the fleet confirmed them already
                    self.stats.confirmed_records += len(early)
                store.mark_sent([s for s in entry.seqs if s not in early] if early
                                else entry.seqs, receipt_wait, self.sync.receipt_max_wait_s)
            except TelemetryError as exc:
                log.error("acknowledged records not marked sent; they will be sent again",
                          extra={"error": str(exc)})
                continue
            self.stats.acked_batches += 1
            self.stats.acked_records += len(entry.seqs)
            self.stats.sent_bytes += entry.size

    def flying(self) -> set[int]:
        """The seqs of the records in flight."""
        return {s for entry in self.inflight.values() for s in entry.seqs}

    def expire(self, now: float) -> None:
        """Batches not acknowledged within [sync] ack_timeout_s: forgotten, so they go again."""
        timeout = self.sync.ack_timeout_s
        for mid in [m for m, e in self.inflight.items() if now - e.sent_at > timeout]:
            self.early.difference_update(self.inflight.pop(mid).seqs)
            self.stats.timed_out_batches += 1
            self._noisy("timeout", "batch not acknowledged in time; will resend",
                        {"mid": mid, "timeout_s": timeout})

    def forget(self) -> None:
        """The store was replaced: nothing in flight belongs to the new one."""
        self.inflight.clear()
        self.early.clear()
