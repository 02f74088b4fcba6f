"""The one module that owns paho-mqtt. Everything else talks to `MqttLink`.

paho 2.x, VERSION2 callbacks, MQTT 5; TLS with a CA file and either username/password or a
client certificate; a retained availability topic (`online` on connect, `offline` as the last
will and on a clean stop); reconnect with exponential backoff (paho's reconnect_delay_set,
driven by its network thread).

Callbacks given to MqttLink run on paho's network thread: they must be quick and must not call
back into the link while holding a lock the caller of `publish()` may hold.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from cloud_sync.errors import LinkError

log = logging.getLogger(__name__)

NO_MATCHING_SUBSCRIBERS = 0x10
_PAHO_INFLIGHT = 1000


@dataclass(frozen=True)
class LinkSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = ""
    keepalive_s: int = 30
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    username: str = ""
    password: str = ""
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    protocol: str = "5"

    @classmethod
    def from_config(cls, mqtt: Any, client_id: str) -> "LinkSettings":
        """From the [mqtt] config section; password_file wins over password."""
        password = mqtt.password
        if mqtt.password_file:
            try:
                password = Path(mqtt.password_file).read_text().splitlines()[0]
            except (OSError, IndexError) as exc:
                raise LinkError(f"[mqtt] password_file {mqtt.password_file!r} cannot be read: "
                                f"{exc}") from exc
        return cls(mqtt.host, mqtt.port, mqtt.client_id or client_id, mqtt.keepalive_s,
                   mqtt.tls, mqtt.ca_file, mqtt.cert_file, mqtt.key_file, mqtt.username,
                   password, mqtt.reconnect_min_s, mqtt.reconnect_max_s, mqtt.protocol)


@dataclass(frozen=True)
class Availability:
    """A retained topic that says `online` while connected and `offline` otherwise."""
    topic: str
    online: bytes = b"online"
    offline: bytes = b"offline"


# topic, payload, MQTT 5 properties -> False to withhold the PUBACK (manual_ack links only)
MessageHandler = Callable[[str, bytes, Any], bool | None]
AckHandler = Callable[[int, int], None]                 # mid, reason code (0 = success)


@dataclass(frozen=True)
class Subscription:
    topic: str
    qos: int = 1


class MqttLink:
    """A broker connection that keeps itself connected until `stop()`."""

    def __init__(self, settings: LinkSettings, *, availability: Availability | None = None,
                 session_expiry_s: int = 0, on_message: MessageHandler | None = None,
                 on_ack: AckHandler | None = None, manual_ack: bool = False,
                 announce: tuple[tuple[str, bytes], ...] = ()):
        """`announce`: (topic, payload) pairs published retained on every connect (a broker
        that lost its retained messages in a crash gets them again)."""
        self.settings = settings
        self.announce = announce
        self.manual_ack = manual_ack
        self.availability = availability
        self.session_expiry_s = session_expiry_s
        self._on_message = on_message
        self._on_ack = on_ack
        self._subscriptions: list[Subscription] = []
        self._connected = threading.Event()
        self.connects = 0
        self.connect_failures = 0
        self._last_fail_log = float("-inf")
        self.dropped_messages = 0       # messages whose handler raised (logged, dropped)
        self.last_error = ""
        self.v5 = settings.protocol == "5"
        self._client = self._build_client()

    def _build_client(self) -> paho.Client:
        s = self.settings
        if self.v5:
            client = paho.Client(callback_api_version=paho.CallbackAPIVersion.VERSION2,
                                 client_id=s.client_id, protocol=paho.MQTTv5,
                                 manual_ack=self.manual_ack)
        else:
            client = paho.Client(callback_api_version=paho.CallbackAPIVersion.VERSION2,
                                 client_id=s.client_id, protocol=paho.MQTTv311,
                                 clean_session=self.session_expiry_s == 0,
                                 manual_ack=self.manual_ack)
        client.reconnect_delay_set(s.reconnect_min_s, max(s.reconnect_max_s,
                                                          s.reconnect_min_s))
        client.max_inflight_messages_set(_PAHO_INFLIGHT)
        client.max_queued_messages_set(0)
        if s.username:
            client.username_pw_set(s.username, s.password or None)
        if s.tls:
            try:
                client.tls_set(ca_certs=s.ca_file or None, certfile=s.cert_file or None,
                               keyfile=s.key_file or None, cert_reqs=ssl.CERT_REQUIRED,
                               tls_version=ssl.PROTOCOL_TLS_CLIENT)
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise LinkError(f"TLS setup failed (ca_file={s.ca_file!r}, "
                                f"cert_file={s.cert_file!r}): {exc}") from exc
        if self.availability is not None:
            client.will_set(self.availability.topic, self.availability.offline, qos=1,
                            retain=True)
        client.on_connect = self._handle_connect
        client.on_connect_fail = self._handle_connect_fail
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        client.on_publish = self._handle_publish
        return client

    # --- lifecycle ------------------------------------------------------------------------

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe now (if connected) and again after every reconnect."""
        self._subscriptions.append(Subscription(topic, qos))
        if self.connected:
            self._subscribe(self._client, topic, qos)

    def resubscribe(self, topic: str) -> None:
        """Subscribe to one of this link's topics again now (the broker then sends its
        retained messages again); nothing when not connected (a reconnect does it anyway)."""
        for sub in self._subscriptions:
            if sub.topic == topic and self.connected:
                self._subscribe(self._client, sub.topic, sub.qos)
                return

    def start(self) -> None:
        """Connect in the background; paho's thread reconnects with backoff from here on."""
        v5: dict[str, Any] = {}
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.session_expiry_s
            v5 = {"clean_start": self.session_expiry_s == 0, "properties": props}
        try:
            self._client.connect_async(self.settings.host, self.settings.port,
                                       self.settings.keepalive_s, **v5)
        except (OSError, ValueError) as exc:
            raise LinkError(f"cannot connect to {self.settings.host}:{self.settings.port}: "
                            f"{exc}") from exc
        self._client.loop_start()

    def reconnect(self) -> None:
        """Drop the connection; paho's thread connects again (the broker then redelivers
        QoS 1 messages this session never acknowledged)."""
        try:
            self._client.reconnect()
        except (OSError, ValueError) as exc:
            log.warning("MQTT reconnect failed; paho keeps retrying", extra={"error": str(exc)})

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def start_connected(self, timeout: float = 10.0) -> None:
        """start(), then wait for the first connection; LinkError (and stopped) without one."""
        self.start()
        if not self.wait_connected(timeout):
            self.stop()
            raise LinkError(f"cannot reach the broker at {self.settings.host}:"
                            f"{self.settings.port}: {self.last_error or 'timeout'}")

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def stop(self, timeout: float = 2.0) -> None:
        """Say `offline` (retained), disconnect cleanly, stop the network thread."""
        if self.connected and self.availability is not None:
            try:
                info = self._client.publish(self.availability.topic, self.availability.offline,
                                            qos=1, retain=True)
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not publish offline availability", extra={"error": str(exc)})
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    # --- publishing ---------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                content_type: str | None = None) -> int:
        """Hand one message to paho; returns its mid (acknowledged later through on_ack).
        LinkError when not connected or paho refuses it."""
        props = None
        if content_type and self.v5:
            props = Properties(PacketTypes.PUBLISH)
            props.ContentType = content_type
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise LinkError(f"publish to {topic} refused: {paho.error_string(info.rc)}")
        return info.mid

    # --- paho callbacks (network thread) --------------------------------------------------------

    def _handle_connect_fail(self, client, userdata) -> None:
        """The broker cannot be reached: say so (once, then at most every 30 s) instead of
        retrying in silence."""
        self.connect_failures += 1
        self.last_error = f"broker {self.settings.host}:{self.settings.port} unreachable"
        now = time.monotonic()
        if now - self._last_fail_log >= 30.0:
            self._last_fail_log = now
            log.warning("MQTT broker unreachable; retrying with backoff", extra={
                "host": self.settings.host, "port": self.settings.port,
                "attempts": self.connect_failures,
                "backoff_max_s": self.settings.reconnect_max_s})

    def _handle_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker refused connection: {reason_code}"
            log.error("MQTT broker refused the connection", extra={
                "host": self.settings.host, "port": self.settings.port,
                "reason": str(reason_code)})
            return
        self.connects += 1
        log.info("MQTT connected", extra={"host": self.settings.host, "port": self.settings.port,
                                          "session_present": flags.session_present})
        for sub in self._subscriptions:
            self._subscribe(client, sub.topic, sub.qos)
        if self.availability is not None:
            client.publish(self.availability.topic, self.availability.online, qos=1,
                           retain=True)
        for topic, payload in self.announce:
            client.publish(topic, payload, qos=1, retain=True)
        self._connected.set()

    def _subscribe(self, client: paho.Client, topic: str, qos: int) -> None:
        if self.v5:
            client.subscribe(topic, options=SubscribeOptions(qos=qos))
        else:
            client.subscribe(topic, qos)

    def _handle_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was = self.connected
        self._connected.clear()
        if was and reason_code.is_failure:
            log.warning("MQTT disconnected", extra={"host": self.settings.host,
                                                    "port": self.settings.port,
                                                    "reason": str(reason_code)})
        elif was:
            log.info("MQTT disconnected", extra={"host": self.settings.host,
                                                 "port": self.settings.port})

    def _handle_message(self, client, userdata, message: paho.MQTTMessage) -> None:
        keep = None
        try:
            if self._on_message is not None:
                keep = self._on_message(message.topic, message.payload, message.properties)
        except Exception:  # one bad message must not end the network thread
            self.dropped_messages += 1
            log.exception("MQTT message handler failed on a message; message dropped")
        if self.manual_ack and keep is not False and message.qos > 0:
            client.ack(message.mid, message.qos)

    def _handle_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if self._on_ack is not None:
            try:
                self._on_ack(mid, int(reason_code.value))
            except Exception:
                log.exception("MQTT ack handler failed", extra={"mid": mid})
