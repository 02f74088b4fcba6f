"""The shipped Mosquitto ACL against the real broker: devices stay on their own topics."""

from __future__ import annotations

import threading

from cloud_sync.mqtt_client import LinkSettings, MqttLink

NOT_AUTHORIZED = 0x87


class Client:
    def __init__(self, broker, user: str, client_id: str):
        self.acks: dict[int, int] = {}
        self.messages: list[tuple[str, bytes]] = []
        self.acked = threading.Condition()
        self.link = MqttLink(LinkSettings(port=broker.port, client_id=client_id, username=user,
                                          password=f"{user}-pw", reconnect_min_s=0.1),
                             on_message=self._message, on_ack=self._ack)

    def _message(self, topic, payload, props):
        self.messages.append((topic, payload))

    def _ack(self, mid, reason):
        with self.acked:
            self.acks[mid] = reason
            self.acked.notify_all()

    def publish(self, topic: str, payload: bytes = b"x", retain: bool = False) -> int:
        mid = self.link.publish(topic, payload, qos=1, retain=retain)
        with self.acked:
            assert self.acked.wait_for(lambda: mid in self.acks, 10), "no PUBACK"
        return self.acks[mid]

    def __enter__(self):
        self.link.start()
        assert self.link.wait_connected(10), self.link.last_error
        return self

    def __exit__(self, *exc):
        self.link.stop()


def test_a_device_cannot_publish_on_another_devices_topics(acl_broker):
    from tests.sync_helpers import wait_until
    with Client(acl_broker, "fleet", "fleet-watch") as fleet, \
            Client(acl_broker, "glasses-1", "glasses-1") as one, \
            Client(acl_broker, "glasses-2", "glasses-2") as two:
        fleet.link.subscribe("edgelens/#")
        two.link.subscribe("edgelens/glasses-1/update/chunk")       # not its own: refused
        wait_until(lambda: False, 0.3)
        own = one.publish("edgelens/glasses-1/update/status", b"mine")
        foreign = two.publish("edgelens/glasses-1/update/status", b"spoofed")
        desired = two.publish("edgelens/_group/lab/desired/detector", b"evil", retain=True)
        chunk = two.publish("edgelens/glasses-1/update/chunk", b"evil")
        fleet_desired = fleet.publish("edgelens/_group/lab/desired/detector", b"ok")
        fleet_chunk = fleet.publish("edgelens/glasses-1/update/chunk", b"chunk")
        assert wait_until(lambda: (b"ok" in [p for _, p in fleet.messages]), 5)
        wait_until(lambda: False, 0.3)
    assert own == 0 and fleet_desired in (0, 0x10) and fleet_chunk in (0, 0x10)
    assert (foreign, desired, chunk) == (NOT_AUTHORIZED,) * 3
    seen = [p for _, p in fleet.messages]
    assert b"mine" in seen and b"ok" in seen and b"chunk" in seen
    assert b"spoofed" not in seen and b"evil" not in seen
    assert not [t for t, _ in two.messages if t == "edgelens/glasses-1/update/chunk"]
