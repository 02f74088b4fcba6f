"""Fleet ingestion: a worker that subscribes through an MQTT 5 shared subscription and writes
batches into the fleet store. Start several with the same group and they split the load.

Each worker keeps a persistent session (clean_start off, session expiry from config), so the
broker queues QoS 1 batches while it is down. A batch is acknowledged (PUBACK) only after it
was committed, or when it is bad input that will never be stored (logged, counted, dropped).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Any

from cloud_sync import batch as batch_codec
from cloud_sync import topics
from cloud_sync.errors import FleetStoreError, PayloadError
from cloud_sync.fleet_store import FleetStore
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
        self.link = MqttLink(settings, session_expiry_s=cfg.fleet.session_expiry_s,
                             on_message=self._handle, manual_ack=True)
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
        try:
            device, channel, _ = topics.parse(self.prefix, topic)
            if channel == topics.TELEMETRY:
                return self._telemetry(device, payload, received)
            if channel == topics.AVAILABILITY:
                if payload not in (topics.ONLINE, topics.OFFLINE):
                    raise PayloadError(f"availability of {device} is {payload[:40]!r}")
                self.store.set_availability(device, payload == topics.ONLINE, received)
            elif channel == topics.STATUS:
                self.store.set_status(device, _status(payload, self.max_message), received)
            else:
                raise PayloadError(f"unexpected topic {topic!r}")
        except PayloadError as exc:
            self._drop(exc)
        except FleetStoreError as exc:
            log.error("%s", exc)
        return True

    def _telemetry(self, device: str, payload: bytes, received: int) -> bool:
        try:
            if len(payload) > self.max_message:
                raise PayloadError(f"telemetry message of {len(payload)} bytes from {device} "
                                   f"is over [fleet] max_message_bytes = {self.max_message}")
            batch = batch_codec.decode(payload, self.max_batch)
            if batch.device != device:
                raise PayloadError(f"batch says device {batch.device!r} on {device}'s topic")
        except PayloadError as exc:
            self._drop(exc)
            return True
        for attempt in range(_STORE_RETRIES):
            try:
                self.store.insert_batch(batch, received, self.worker)
                self.messages += 1
                return True
            except FleetStoreError as exc:
                log.error("attempt %d: %s", attempt + 1, exc)
                time.sleep(0.2 * (attempt + 1))
        self.store_failures += 1
        self._reconnect.set()
        return False

    def _drop(self, exc: Exception) -> None:
        self.dropped += 1
        log.warning("message dropped: %s", exc)
        try:
            self.store.count_dropped(self.worker)
        except FleetStoreError as store_exc:
            log.error("%s", store_exc)


def _status(payload: bytes, limit: int) -> dict[str, Any]:
    if len(payload) > limit:
        raise PayloadError(f"status message of {len(payload)} bytes is over the limit")
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"status is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise PayloadError(f"status must be a JSON object, got {type(doc).__name__}")
    return doc
