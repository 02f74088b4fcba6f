"""Fleet ingestion: a worker that subscribes through an MQTT 5 shared subscription and writes
batches into the fleet store. Start several with the same group and they split the load.

Each worker keeps a persistent session (clean_start off, session expiry from config), so the
broker queues QoS 1 batches while it is down. A batch is acknowledged (PUBACK) only after it
was committed, or when it is bad input that will never be stored (logged, counted, dropped).
So a worker killed with SIGKILL mid-batch loses nothing: its unacknowledged batches stay in its
session and come again when it reconnects with the same --worker-id, and what it had committed
but not acknowledged meets ON CONFLICT (device, seq) DO NOTHING (tests/test_fleet_scale.py,
against PostgreSQL). After the commit the worker sends the device a receipt for the batch
(`P/<device>/receipt`) and keeps `P/_fleet/receipts` retained: a device then holds what the
broker acknowledged until the receipt, so a broker crash after its PUBACK loses nothing either
(the device sends it again; duplicates meet the same ON CONFLICT). Workers on several machines share one PostgreSQL store (`--db
postgresql://…`); on one machine they may also share a SQLite file.

Everything a device sends is hostile until checked: a message that fails is dropped with one
log line saying why (never a traceback) and counted, per worker (`dropped`) and per device and
channel (`refused`); a batch's malformed records are refused one by one (`batch.decode`,
fleet_store) and the rest is stored.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from cloud_sync import batch as batch_codec
from cloud_sync import topics
from cloud_sync.errors import FleetStoreError, LinkError, PayloadError
from cloud_sync.fleet.device_input import check_batch, valid_name
from cloud_sync.json_input import parse_json
from cloud_sync.fleet.store import FleetStore
from cloud_sync.mqtt_client import LinkSettings, MqttLink
from device.config import Config

log = logging.getLogger(__name__)

_STORE_RETRIES = 3


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class FleetIngest:
    def __init__(self, cfg: Config, store: FleetStore, worker_id: str | None = None,
                 link_settings: LinkSettings | None = None):
        self.cfg = cfg
        self.store = store
        self.worker = worker_id or default_worker_id()
        self.prefix = cfg.mqtt.topic_prefix
        self.max_message = cfg.fleet.max_message_bytes
        self.max_batch = cfg.fleet.max_batch_bytes
        self.messages = 0
        self.dropped = 0
        self.store_failures = 0
        self._reconnect = threading.Event()
        settings = link_settings or LinkSettings.from_config(
            cfg.mqtt, f"edgelens-fleet-{self.worker}")
        self.receipts_sent = 0
        self.link = MqttLink(settings, session_expiry_s=cfg.fleet.session_expiry_s,
                             on_message=self._handle, manual_ack=True,
                             announce=((topics.receipts_topic(self.prefix), b"1"),))
        group = cfg.fleet.share_group
        self.link.subscribe(topics.shared(group, f"{self.prefix}/+/{topics.TELEMETRY}"))
        self.link.subscribe(f"{self.prefix}/+/{topics.AVAILABILITY}")
        self.link.subscribe(f"{self.prefix}/+/{topics.STATUS}")

    def run(self, stop: threading.Event) -> None:
        self.link.start()
        try:
            while not stop.wait(0.5):
                if self._reconnect.is_set():
                    self._reconnect.clear()
                    log.warning("fleet store failed; reconnecting so the broker redelivers")
                    self.link.reconnect()
        finally:
            self.link.stop()

    def _handle(self, topic: str, payload: bytes, properties: Any) -> bool:
        """paho's network thread. True: acknowledge; False: keep it for redelivery."""
        received = time.time_ns()
        device, channel = None, None
        try:
            name, channel, _ = topics.parse(self.prefix, topic)
            if not valid_name(name):
                raise PayloadError(f"device id {name!r} in topic {topic!r} is not valid")
            device = name
            if channel == topics.TELEMETRY:
                return self._telemetry(device, payload, received)
            if channel == topics.AVAILABILITY:
                if payload not in (topics.ONLINE, topics.OFFLINE):
                    raise PayloadError(f"availability of {device} is {payload[:40]!r}")
                self.store.set_availability(device, payload == topics.ONLINE, received)
            elif channel == topics.STATUS:
                self.store.set_status(device, parse_json(payload, "status",
                                                                self.max_message), received)
            else:
                raise PayloadError(f"unexpected topic {topic!r}")
        except PayloadError as exc:
            self._drop(exc, device, channel)
        except FleetStoreError as exc:
            log.error("availability or status not stored", extra={"error": str(exc)})
        except Exception as exc:  # noqa: BLE001  hostile input must not reach paho's traceback
            self._drop(exc, device, channel)
        return True

    def _telemetry(self, device: str, payload: bytes, received: int) -> bool:
        try:
            if len(payload) > self.max_message:
                raise PayloadError(f"telemetry message of {len(payload)} bytes from {device} "
                                   f"is over [fleet] max_message_bytes = {self.max_message}")
            batch = batch_codec.decode(payload, self.max_batch)
            if batch.device != device:
                raise PayloadError(f"batch says device {batch.device!r:.80} on {device}'s "
                                   "topic")
            check_batch(batch)
        except (PayloadError, RecursionError) as exc:
            self._drop(exc, device, topics.TELEMETRY)
            return True
        for attempt in range(_STORE_RETRIES):
            try:
                result = self.store.insert_batch(batch, received, self.worker)
                self.messages += 1
                # refused records are confirmed too (never stored, sending again cannot help),
                # all but those whose seq is unusable
                self._send_receipt(device, [r[0] for r in batch.records] +
                                   [seq for seq, _ in batch.refused if seq is not None])
                if result.refused:
                    log.warning("records refused", extra={
                        "device": device, "count": sum(result.refused.values()),
                        "total": len(batch.records) + len(batch.refused),
                        "reasons": ", ".join(f"{k}={n}"
                                             for k, n in sorted(result.refused.items()))})
                return True
            except FleetStoreError as exc:
                log.error("fleet store insert failed",
                          extra={"attempt": attempt + 1, "error": str(exc)})
                time.sleep(0.2 * (attempt + 1))
        self.store_failures += 1
        self._reconnect.set()
        return False

    def _send_receipt(self, device: str, seqs: list[int]) -> None:
        """Committed: tell the device (best effort; without it the device sends again)."""
        try:
            self.link.publish(topics.device_topic(self.prefix, device, topics.RECEIPT),
                              batch_codec.receipt(seqs), qos=1)
            self.receipts_sent += 1
        except LinkError as exc:
            log.warning("receipt not sent; the device will send the batch again",
                        extra={"device": device, "error": str(exc)})

    def _drop(self, exc: Exception, device: str | None = None,
              channel: str | None = None) -> None:
        """One line with the reason (no traceback), counted per worker and per device."""
        self.dropped += 1
        reason = str(exc) if isinstance(exc, PayloadError) else \
            f"{type(exc).__name__}: {exc}"
        log.warning("message dropped", extra={"reason": reason.replace("\n", "\\n")[:300]})
        try:
            self.store.count_dropped(self.worker)
            if device is not None and channel is not None:
                self.store.count_refused(device, f"message.{channel}")
        except FleetStoreError as store_exc:
            log.error("dropped message not counted", extra={"error": str(store_exc)})
