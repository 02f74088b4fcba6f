"""Store-and-forward: unsent telemetry records → compressed batches → QoS 1 → marked sent on
PUBACK.

The telemetry store is the queue. A record is marked sent only after the broker acknowledged
the batch that carried it, so a crash at any point (even kill -9 between PUBACK and the mark)
re-sends rather than loses; the fleet drops duplicates by (device, seq). With
`require_subscriber` a PUBACK saying "no matching subscribers" counts as not delivered.

A PUBACK says the broker has the batch, not that the fleet stored it: a broker that crashes
before its next snapshot loses what it acknowledged. When the fleet's ingest announces that it
confirms (retained `P/_fleet/receipts`, remembered in the store), a record the broker took
waits as unconfirmed until the ingest's receipt for it (`P/<device>/receipt`, sent after its
commit) and is sent again when none came within `[sync] receipt_timeout_s`, the wait doubling
per try up to `receipt_max_wait_s` (so a fleet down for hours is not flooded with copies).

Batches go out highest priority first (audit, then error logs, ..., metrics last), at most
`max_inflight` unacknowledged at once and at most `max_bytes_per_s` compressed bytes per second.
A retained status message carries the backlog gauge.

This module runs the loop and handles the fleet's receipts, the status and inbound commands;
the batches themselves (read, encode, pace, publish, acknowledge, expire) are
sync_outbox.Outbox, and model updates run on their own thread (update_agent.UpdateAgent).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from cloud_sync import batch as batch_codec
from cloud_sync import topics
from cloud_sync.errors import LinkError, PayloadError
from cloud_sync.mqtt_client import Availability, LinkSettings, MqttLink
from cloud_sync.sync_outbox import Outbox
from cloud_sync.update_agent import UpdateAgent
from cloud_sync.json_input import parse_json
from device.config import Config
from device.errors import StoreCorruptError, TelemetryError
from device.telemetry.store import TelemetryStore

log = logging.getLogger(__name__)

_REOPEN_CHECK_S = 5.0
_HEAR_FLEET_S = 1.0     # after connecting, wait this long to hear whether the fleet confirms
_NOISY_LOG_EVERY_S = 30.0


def device_id(cfg: Config) -> str:
    return topics.check_device_id(cfg.telemetry.device_id or socket.gethostname())


@dataclass
class SyncStats:
    published_batches: int = 0
    acked_batches: int = 0
    acked_records: int = 0
    sent_bytes: int = 0
    refused_batches: int = 0
    timed_out_batches: int = 0
    inbound_dropped: int = 0
    inbound_handled: int = 0
    updates_restarts: int = 0       # the model-updates thread died and was started again
    confirmed_records: int = 0      # receipts from the fleet (after its commit)
    resent_unconfirmed: int = 0     # records sent again: no receipt in time


class SyncAgent:
    """Run with `agent.run(stop_event)`; `SyncAgent.from_config(cfg)` builds the pieces."""

    def __init__(self, cfg: Config, store: TelemetryStore | None,
                 link_settings: LinkSettings | None = None):
        self.cfg = cfg
        self.sync = cfg.sync
        self.device = device_id(cfg)
        self.prefix = cfg.mqtt.topic_prefix
        self.store = store
        self.stats = SyncStats()
        self.commands: dict[str, Callable[[dict[str, Any]], None]] = {
            "ping": lambda body: self._publish_status()}
        self._receipts: list[list[int]] = []
        self._fleet_says: bytes | None = None   # the retained receipts announcement, new
        self._fleet_confirms = False
        self._heard_fleet = False           # its announcement came on this connection
        self._connection = (0, 0.0)         # (link.connects, when the loop saw it)
        self._next_resend_check = 0.0
        self._receipts_lock = threading.Lock()
        self._ack_event = threading.Event()
        self._status_due = threading.Event()
        self._noisy_at: dict[str, float] = {}
        settings = link_settings or LinkSettings.from_config(cfg.mqtt,
                                                             f"edgelens-sync-{self.device}")
        self.link = MqttLink(
            settings,
            availability=Availability(topics.device_topic(self.prefix, self.device,
                                                          topics.AVAILABILITY)),
            on_message=self._handle_inbound, on_ack=self._handle_ack)
        self.link.subscribe(f"{self.prefix}/{self.device}/{topics.COMMAND}/+")
        self._receipt_topic = topics.device_topic(self.prefix, self.device, topics.RECEIPT)
        self._receipts_topic = topics.receipts_topic(self.prefix)
        if self.sync.receipt_timeout_s > 0:
            self.link.subscribe(self._receipt_topic)
            self.link.subscribe(self._receipts_topic)
        self._updates_thread: threading.Thread | None = None
        self.updates = None             # model updates (issue 6): cloud_sync/update_agent.py
        if cfg.updates.enabled and cfg.updates.trusted_keys:
            self.updates = UpdateAgent(cfg, self.link, self.device)
            for topic in self.updates.subscriptions():
                self.link.subscribe(topic)
        self.outbox = Outbox(self.link, self.sync, self.device,
                             topics.device_topic(self.prefix, self.device, topics.TELEMETRY),
                             self.stats, self._noisy)
        self._status_topic = topics.device_topic(self.prefix, self.device, topics.STATUS)
        if store is not None:
            self._fleet_confirms = store.meta("fleet_receipts") == "1"

    # --- the loop -------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Sync until `stop` is set; then say offline and disconnect."""
        self.link.start()
        self._updates_thread = None
        self._start_updates(stop)
        next_status = 0.0
        busy = False
        next_reopen_check = time.monotonic() + _REOPEN_CHECK_S
        try:
            while not stop.is_set():
                self._supervise_updates(stop)
                now = time.monotonic()
                if self.store is None or now >= next_reopen_check:
                    self._ensure_store()
                    next_reopen_check = now + _REOPEN_CHECK_S
                    if self.store is None:
                        stop.wait(_REOPEN_CHECK_S)
                        continue
                self.outbox.collect_acks(self.store, self._receipt_wait())
                self._collect_receipts(now)
                self.outbox.expire(now)
                if not self.link.connected:
                    self.link.wait_connected(0.2)
                    continue
                if now >= next_status or self._status_due.is_set():
                    self._status_due.clear()
                    self._publish_status()
                    next_status = now + self.sync.status_interval_s
                if self._send_one(stop):
                    busy = True
                    continue
                if busy and not self.outbox.inflight:
                    busy = False            # drained: publish the backlog gauge at once
                    self._status_due.set()
                    continue
                self._ack_event.wait(self.sync.idle_poll_s)
                self._ack_event.clear()
        finally:
            if self._updates_thread is not None:
                self._updates_thread.join(10)
            self.outbox.collect_acks(self.store, self._receipt_wait())
            self.link.stop()
            if self.store is not None:
                self.store.close()

    def _start_updates(self, stop: threading.Event) -> None:
        if self.updates is None:
            return
        self._updates_thread = threading.Thread(target=self._run_updates, args=(stop,),
                                                name="updates", daemon=True)
        self._updates_thread.start()

    def _run_updates(self, stop: threading.Event) -> None:
        try:
            self.updates.run(stop)
        except BaseException as exc:  # noqa: BLE001 - reported; the loop starts it again
            log.critical("model-updates thread died",
                         extra={"error": f"{type(exc).__name__}: {exc}"}, exc_info=exc)

    def _supervise_updates(self, stop: threading.Event) -> None:
        """The model-updates thread must never be gone while we run: start it again (counted
        in the sync stats, `updates_restarts`, and logged)."""
        thread = self._updates_thread
        if thread is None or thread.is_alive() or stop.is_set():
            return
        self.stats.updates_restarts += 1
        log.error("model-updates thread ended; starting it again",
                  extra={"restarts": self.stats.updates_restarts})
        self._status_due.set()
        self._start_updates(stop)

    def _send_one(self, stop: threading.Event) -> bool:
        """Publish one batch (sync_outbox.Outbox); False when there was nothing (allowed) to
        send."""
        return self.outbox.has_room() and self._know_fleet() and \
            self.outbox.send_one(self.store, stop)

    # --- acknowledgements and receipts ----------------------------------------------------------

    def _handle_ack(self, mid: int, reason: int) -> None:
        """paho's network thread: only note it; the loop marks records sent."""
        self.outbox.note_ack(mid, reason)
        self._ack_event.set()

    def _know_fleet(self) -> bool:
        """Whether the fleet confirms is known: from before (the store remembers it), from
        its retained announcement on this connection, or after _HEAR_FLEET_S without one. Until
        then nothing is sent: a PUBACK taken as delivery by mistake could be lost."""
        if self.sync.receipt_timeout_s <= 0 or self._fleet_confirms or self._heard_fleet:
            return True
        now = time.monotonic()
        if self._connection[0] != self.link.connects:
            self._connection = (self.link.connects, now)
        return now - self._connection[1] >= _HEAR_FLEET_S

    def _receipt_wait(self) -> float:
        """How long a record the broker took waits for the fleet's receipt (0: no wait)."""
        return self.sync.receipt_timeout_s if self._fleet_confirms else 0.0

    def _collect_receipts(self, now: float) -> None:
        """The fleet's receipts and its announcement (noted by paho's thread), and records
        whose receipt is overdue sent again (checked once a second)."""
        with self._receipts_lock:
            receipts, self._receipts = self._receipts, []
            said, self._fleet_says = self._fleet_says, None
        try:
            if said is not None:
                confirms = said == b"1"
                if confirms != self._fleet_confirms:
                    if confirms:
                        log.info("the fleet sends receipts after its commits")
                    else:
                        log.info("the fleet no longer sends receipts after its commits: a "
                                 "PUBACK counts as delivered")
                self._fleet_confirms, self._heard_fleet = confirms, True
                self.store.set_meta("fleet_receipts", "1" if confirms else "0")
            if receipts:
                flying = self.outbox.flying()
                for seqs in receipts:
                    self.stats.confirmed_records += self.store.confirm(seqs)
                    self.outbox.early.update(s for s in seqs if s in flying)
            if self._fleet_confirms and now >= self._next_resend_check:
                self._next_resend_check = now + 1.0
                again = self.store.resend_unconfirmed()
                if again:
                    self.stats.resent_unconfirmed += again
                    self._noisy("unconfirmed", "records got no receipt from the fleet in "
                                "time; sending them again", {"count": again})
        except TelemetryError as exc:
            self._noisy("receipts", "receipts not recorded", {"error": str(exc)})

    # --- status (the backlog gauge) -------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        backlog = self.store.backlog() if self.store is not None else {}
        wall, mono = time.time_ns(), time.monotonic_ns()
        return {"device": self.device, "wall_ns": wall, "mono_ns": mono,
                "boot_id": self.store.clock.boot_id if self.store else "",
                "backlog": backlog, "backlog_total": sum(backlog.values()),
                "oldest_unsent_wall_ns": (self.store.oldest_unsent_wall_ns()
                                          if self.store else None),
                "counters": self.store.counters() if self.store else {},
                "connected": self.link.connected, "inflight": len(self.outbox.inflight),
                "unconfirmed": self.store.unconfirmed() if self.store else 0,
                "sync": self.stats.__dict__.copy()}

    def _publish_status(self) -> None:
        try:
            body = json.dumps(self.status()).encode()
            self.link.publish(self._status_topic, body, qos=1, retain=True)
        except (LinkError, TelemetryError) as exc:
            self._noisy("status", "status not published", {"error": str(exc)})
        except Exception as exc:  # sqlite3 while the file is being swapped
            self._noisy("status", "status not published",
                        {"error": f"{type(exc).__name__}: {exc}"})

    # --- inbound commands -----------------------------------------------------------------------

    def _handle_inbound(self, topic: str, payload: bytes, properties: Any) -> None:
        """paho's network thread. Bad input is counted, logged and dropped; nothing here
        raises (a handler error is dropped the same way)."""
        try:
            if self.updates is not None and self.updates.owns(topic):
                self.updates.handle(topic, payload)
                return
            if topic in (self._receipt_topic, self._receipts_topic):
                self._note_receipt(topic, payload)
                return
            name, body = self._parse_command(topic, payload)
            self.stats.inbound_handled += 1
            if name == "ping":
                self._status_due.set()   # published by the loop, not the network thread
                self._ack_event.set()
            else:
                self.commands[name](body)
        except PayloadError as exc:
            self.stats.inbound_dropped += 1
            log.warning("inbound message dropped", extra={"error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - counted and dropped, never raised to paho
            self.stats.inbound_dropped += 1
            self._noisy("inbound", "inbound message dropped",
                        {"topic": topic, "error": f"{type(exc).__name__}: {exc}"})

    def _note_receipt(self, topic: str, payload: bytes) -> None:
        """paho's thread: queue it for the loop (which owns the store)."""
        if topic == self._receipts_topic:
            with self._receipts_lock:
                self._fleet_says = payload[:8]
        else:
            seqs = batch_codec.parse_receipt(payload, self.sync.max_inbound_bytes)
            with self._receipts_lock:
                self._receipts.append(seqs)
        self._ack_event.set()

    def _parse_command(self, topic: str, payload: bytes) -> tuple[str, dict[str, Any]]:
        if len(payload) > self.sync.max_inbound_bytes:
            raise PayloadError(f"{len(payload)} bytes on {topic} is over "
                               f"[sync] max_inbound_bytes = {self.sync.max_inbound_bytes}")
        device, channel, name = topics.parse(self.prefix, topic)
        if device != self.device or channel != topics.COMMAND or name not in self.commands:
            raise PayloadError(f"unknown command topic {topic!r}")
        return name, parse_json(payload or b"{}", f"command {name}", self.sync.max_inbound_bytes)

    # --- helpers --------------------------------------------------------------------------------

    def _ensure_store(self) -> None:
        if self.store is not None and not self.store.replaced():
            return
        if self.store is not None:
            log.warning("telemetry store was replaced; reopening",
                        extra={"path": str(self.store.path)})
            self.store.close()
            self.store = None
            self.outbox.forget()
        try:
            self.store = TelemetryStore.open(self.cfg.telemetry.db_path, self.cfg.telemetry,
                                             quarantine=False)
            self._remember_fleet()
        except StoreCorruptError as exc:
            self._noisy("corrupt", "telemetry store unusable (the pipeline quarantines it)",
                        {"error": str(exc)})
        except (TelemetryError, OSError) as exc:
            self._noisy("open", "cannot open telemetry store", {"error": str(exc)})

    def _remember_fleet(self) -> None:
        """A store (re)opened: what this process heard the fleet announce stands, and the
        file is told (a new or salvaged file may not know it); without an announcement heard,
        the file's memory of it."""
        said = self.store.meta("fleet_receipts")
        if not self._heard_fleet:
            self._fleet_confirms = said == "1"
            return
        known = "1" if self._fleet_confirms else "0"
        if said != known:
            try:
                self.store.set_meta("fleet_receipts", known)
            except TelemetryError as exc:
                self._noisy("receipts", "receipts announcement not recorded",
                            {"error": str(exc)})

    def _noisy(self, key: str, event: str, fields: dict[str, Any]) -> None:
        """Log a repeating warning (`event`, with `fields` as its structured fields) at most
        every 30 s."""
        now = time.monotonic()
        if now - self._noisy_at.get(key, -1e9) >= _NOISY_LOG_EVERY_S:
            self._noisy_at[key] = now
            log.warning(event, extra=fields)
