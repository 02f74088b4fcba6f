"""Issue 11, the broker side, against the shipped deploy/mosquitto.conf on a real Mosquitto:
a broker crash (kill -9) keeps acknowledged telemetry queued for an offline ingest worker, and
a device's login cannot take another device's client id on any listener."""

from __future__ import annotations

import threading

import pytest

from cloud_sync.mqtt_client import LinkSettings, MqttLink
from device.telemetry import Recorder
from fixtures_broker import config_for, shipped_broker
from sync_helpers import run_agent, run_ingest, wait_until

pytestmark = pytest.mark.broker

RECORDS = 3000


def test_acknowledged_batches_survive_a_broker_kill_9(tmp_path):
    """Records published QoS 1 into the ingest worker's persistent session while it is
    offline, acknowledged (so marked sent on the device), then the broker is killed -9 and
    restarted: the worker gets every one of them."""
    broker = shipped_broker(tmp_path / "broker")
    (tmp_path / "fleet").mkdir()
    (tmp_path / "device").mkdir()
    try:
        fleet_cfg = config_for(tmp_path / "fleet", broker, device="fleet",
                               mqtt=broker.mqtt("fleet"))
        device_cfg = config_for(tmp_path / "device", broker, device="glasses-0001",
                                mqtt=broker.mqtt("glasses-0001"),
                                sync={"batch_records": 50})
        ingest, fleet = run_ingest(fleet_cfg)          # creates its persistent session
        ingest.stop()
        recorder = Recorder.open(device_cfg.telemetry)
        for i in range(RECORDS):
            recorder.log_event("INFO", "frame.done", {"i": i})
        recorder.close()
        agent = run_agent(device_cfg)
        try:
            assert wait_until(lambda: agent.worker.stats.acked_records == RECORDS, 60), \
                agent.worker.stats
        finally:
            agent.stop()
        assert fleet.record_count() == 0
        # past one snapshot interval of the shipped config (autosave_interval), then a crash
        wait_until(lambda: False, 4.0)
        broker.kill()
        broker.start()
        ingest, fleet = run_ingest(fleet_cfg)          # same worker id: same session
        try:
            assert wait_until(lambda: fleet.record_count() == RECORDS, 30), \
                f"{fleet.record_count()} of {RECORDS} acknowledged records after kill -9"
        finally:
            ingest.stop()
        assert fleet.seqs("glasses-0001") == list(range(1, RECORDS + 1))
    finally:
        broker.kill()


class _Client:
    def __init__(self, broker, user: str, client_id: str, port: int):
        self.messages: list[tuple[str, bytes]] = []
        self.acks: dict[int, int] = {}
        self.acked = threading.Condition()
        self.link = MqttLink(LinkSettings(port=port, client_id=client_id, username=user,
                                          password=f"{user}-pw", tls=True,
                                          ca_file=str(broker.ca_file), reconnect_min_s=0.2,
                                          reconnect_max_s=1.0),
                             on_message=lambda t, p, _props: self.messages.append((t, p)),
                             on_ack=self._ack)

    def _ack(self, mid, reason):
        with self.acked:
            self.acks[mid] = reason
            self.acked.notify_all()

    def publish(self, topic: str, payload: bytes) -> int | None:
        """The PUBACK reason, or None when not connected."""
        if not self.link.connected:
            return None
        mid = self.link.publish(topic, payload, qos=1)
        with self.acked:
            self.acked.wait_for(lambda: mid in self.acks, 5)
        return self.acks.get(mid)


def test_a_device_login_cannot_take_another_devices_client_id_on_any_listener(tmp_path):
    broker = shipped_broker(tmp_path / "broker")
    victim = _Client(broker, "glasses-0001", "glasses-0001", broker.port)
    watcher = _Client(broker, "fleet", "fleet-watch", broker.fleet_port)
    # glasses-0002's credentials, glasses-0001's client id, on the fleet listener
    impostor = _Client(broker, "glasses-0002", "glasses-0001", broker.fleet_port)
    own_id = _Client(broker, "glasses-0002", "fleet-ingest-9", broker.fleet_port)
    fleet_on_devices = _Client(broker, "fleet", "fleet-x", broker.port)
    try:
        for c in (victim, watcher):
            c.link.start()
            assert c.link.wait_connected(10), c.link.last_error
        watcher.link.subscribe("edgelens/+/status")
        wait_until(lambda: False, 0.3)
        for c in (impostor, own_id, fleet_on_devices):
            c.link.start()
        wait_until(lambda: False, 2.0)                 # time to connect (and retry) if it can
        spoofed = impostor.publish("edgelens/glasses-0001/status", b"spoofed")
        assert victim.publish("edgelens/glasses-0001/status", b"mine") == 0
        assert wait_until(lambda: b"mine" in [p for _, p in watcher.messages], 5)
        connected = (impostor.link.connects, own_id.link.connects,
                     fleet_on_devices.link.connects)
        victim_connects, victim_on = victim.link.connects, victim.link.connected
    finally:
        for c in (victim, watcher, impostor, own_id, fleet_on_devices):
            c.link.stop()
        broker.kill()
    assert connected == (0, 0, 0), "a login was let in on the other listener"
    assert spoofed is None
    assert victim_on and victim_connects == 1, "the device was knocked off"
    assert b"spoofed" not in [p for _, p in watcher.messages]


def test_the_shipped_config_lets_devices_and_the_fleet_in_on_their_listeners(tmp_path):
    broker = shipped_broker(tmp_path / "broker")
    device = _Client(broker, "glasses-0001", "anything", broker.port)
    fleet = _Client(broker, "fleet", "fleet-ingest-1", broker.fleet_port)
    try:
        for c in (device, fleet):
            c.link.start()
            assert c.link.wait_connected(10), c.link.last_error
        fleet.link.subscribe("edgelens/+/status")
        wait_until(lambda: False, 0.3)
        assert device.publish("edgelens/glasses-0001/status", b"up") == 0
        assert device.publish("edgelens/glasses-0002/status", b"not mine") == 0x87
        assert wait_until(lambda: b"up" in [p for _, p in fleet.messages], 5)
    finally:
        device.link.stop()
        fleet.link.stop()
        broker.kill()
