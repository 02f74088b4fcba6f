"""The broker ACL (`edgelens-fleet acl`, deploy/mosquitto.conf's listeners) against the real
broker: devices stay on their own topics and their own group's desired state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

from cloud_sync.fleet.acl import load_groups, render_acl
from cloud_sync.mqtt_client import LinkSettings, MqttLink
from sync_helpers import ROOT, wait_until

NOT_AUTHORIZED = 0x87
ACCEPTED = (0, 0x10)         # 0x10: accepted, no matching subscribers


class Client:
    def __init__(self, broker, user: str, client_id: str | None = None):
        self.acks: dict[int, int] = {}
        self.messages: list[tuple[str, bytes]] = []
        self.acked = threading.Condition()
        port = broker.fleet_port if user == "fleet" else broker.port
        self.link = MqttLink(LinkSettings(port=port, client_id=client_id or user, username=user,
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
    assert own == 0 and fleet_desired in ACCEPTED and fleet_chunk in ACCEPTED
    assert (foreign, desired, chunk) == (NOT_AUTHORIZED,) * 3
    seen = [p for _, p in fleet.messages]
    assert b"mine" in seen and b"ok" in seen and b"chunk" in seen
    assert b"spoofed" not in seen and b"evil" not in seen
    assert not [t for t, _ in two.messages if t == "edgelens/glasses-1/update/chunk"]


def test_receipts_come_only_from_the_fleet_and_only_to_their_device(acl_broker):
    """A device could otherwise confirm records the fleet never stored (its own, or another
    device's), or say the fleet sends no receipts."""
    with Client(acl_broker, "fleet", "fleet-ingest") as fleet:
        assert fleet.publish("edgelens/_fleet/receipts", b"1", retain=True) in ACCEPTED
    with Client(acl_broker, "glasses-1") as one, Client(acl_broker, "glasses-2") as two:
        one.link.subscribe("edgelens/glasses-1/receipt")
        one.link.subscribe("edgelens/_fleet/receipts")
        two.link.subscribe("edgelens/glasses-1/receipt")              # not its own: refused
        wait_until(lambda: False, 0.3)
        forged = [two.publish("edgelens/glasses-1/receipt", b"forged"),
                  one.publish("edgelens/glasses-1/receipt", b"forged"),
                  one.publish("edgelens/_fleet/receipts", b"", retain=True)]
        with Client(acl_broker, "fleet", "fleet-ingest") as fleet:
            assert fleet.publish("edgelens/glasses-1/receipt", b"real") in ACCEPTED
        assert wait_until(lambda: b"real" in _received(one), 5)
        wait_until(lambda: False, 0.3)
    assert forged == [NOT_AUTHORIZED] * 3
    assert _received(one) == {b"1", b"real"}          # the announcement stayed as it was
    assert _received(two) == set()


def _desired(group: str) -> str:
    return f"edgelens/_group/{group}/desired/detector"


def _received(client: Client) -> set[bytes]:
    return {p for _, p in client.messages}


def test_a_device_reads_only_its_own_groups_desired_state(acl_broker):
    with Client(acl_broker, "fleet", "fleet-push") as fleet:
        assert fleet.publish(_desired("lab"), b"lab-state", retain=True) in ACCEPTED
        assert fleet.publish(_desired("field"), b"field-state", retain=True) in ACCEPTED
    with Client(acl_broker, "glasses-1") as lab, Client(acl_broker, "glasses-2") as field:
        for device in (lab, field):
            device.link.subscribe("edgelens/_group/+/desired/+")    # asks for every group
            device.link.subscribe(_desired("lab"))
            device.link.subscribe(_desired("field"))
        assert wait_until(lambda: _received(lab) and _received(field), 5)
        wait_until(lambda: False, 0.5)
    assert _received(lab) == {b"lab-state"}
    assert _received(field) == {b"field-state"}


def test_a_device_cannot_borrow_another_devices_client_id(acl_broker):
    with Client(acl_broker, "glasses-1") as one, \
            Client(acl_broker, "glasses-2", client_id="glasses-1") as impostor, \
            Client(acl_broker, "fleet", "fleet-watch") as fleet:
        fleet.link.subscribe("edgelens/+/status")
        wait_until(lambda: False, 0.3)
        spoofed = impostor.publish("edgelens/glasses-1/status", b"spoofed")
        own = impostor.publish("edgelens/glasses-2/status", b"its own")
        assert wait_until(lambda: b"its own" in _received(fleet), 5)
        still_on = one.link.connected                  # not taken over by the same client id
    assert spoofed == NOT_AUTHORIZED and own in ACCEPTED and still_on
    assert b"spoofed" not in _received(fleet)


def test_moving_a_device_to_another_group_takes_effect_on_reload(acl_broker, tmp_path):
    with Client(acl_broker, "fleet", "fleet-push") as fleet:
        fleet.publish(_desired("lab"), b"lab-state", retain=True)
    groups = tmp_path / "groups.toml"
    groups.write_text('[groups]\nlab = ["glasses-1", "glasses-2"]\nfield = []\n')
    out = subprocess.run([sys.executable, "-m", "cloud_sync.fleet.cli", "acl", "--groups",
                          str(groups), "--out", str(acl_broker.acl_file)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    with Client(acl_broker, "glasses-2") as before:
        before.link.subscribe(_desired("lab"))
        wait_until(lambda: False, 0.5)
    os.kill(acl_broker.pid, signal.SIGHUP)
    wait_until(lambda: False, 0.5)
    with Client(acl_broker, "glasses-2") as after:
        after.link.subscribe(_desired("lab"))
        assert wait_until(lambda: _received(after), 5)
    assert _received(before) == set() and _received(after) == {b"lab-state"}


def test_the_shipped_acl_is_the_one_written_from_the_example_groups():
    example = ROOT / "deploy" / "groups.example.toml"
    shipped = (ROOT / "deploy" / "mosquitto.acl").read_text()
    assert shipped == render_acl("edgelens", load_groups(example), source=example.name), \
        "regenerate: edgelens-fleet acl --groups deploy/groups.example.toml --out " \
        "deploy/mosquitto.acl"


def test_a_broken_groups_file_is_a_named_error(tmp_path):
    import pytest

    from cloud_sync.errors import SyncError
    cases = {'[groups]\nlab = ["a", "b"]\nfield = ["b"]\n': "both 'lab' and 'field'",
             '[groups]\nlab = ["../etc"]\n': "not usable in a topic",
             '[groups]\n"bad group" = ["a"]\n': "group 'bad group'",
             '[groups]\nlab = "a"\n': "must list device ids",
             '[groups]\nlab = [1]\n': "not a device id",
             'groups = 3\n': "[groups] table",
             '[groups\n': "groups file"}
    for text, message in cases.items():
        path = tmp_path / "groups.toml"
        path.write_text(text)
        with pytest.raises(SyncError) as caught:
            load_groups(path)
        assert message in str(caught.value), (text, caught.value)


def test_the_shipped_broker_config_runs_with_the_shipped_acl(tmp_path):
    """deploy/mosquitto.conf with only its paths, ports and addresses swapped for test ones
    (fixtures_broker.ShippedBroker, which also waits until it listens)."""
    from fixtures_broker import shipped_broker
    broker = shipped_broker(tmp_path)
    try:
        def link(port: int, user: str, client_id: str) -> MqttLink:
            return MqttLink(LinkSettings(port=port, client_id=client_id, username=user,
                                         password=f"{user}-pw", tls=True,
                                         ca_file=str(broker.ca_file), reconnect_min_s=0.1))
        device = link(broker.port, "glasses-0001", "anything")
        fleet = link(broker.fleet_port, "fleet", "fleet-ingest-1")
        for each in (device, fleet):
            each.start()
        try:
            assert device.wait_connected(10), device.last_error
            assert fleet.wait_connected(10), fleet.last_error
        finally:
            device.stop()
            fleet.stop()
    finally:
        broker.kill()


def test_a_push_to_a_group_the_groups_file_does_not_list_is_refused(tmp_path):
    from fixtures_broker import config_for
    from update_helpers import make_version
    groups = tmp_path / "groups.toml"
    groups.write_text('[groups]\nlab = ["glasses-1"]\n')
    cfg = config_for(tmp_path, None, fleet={"groups_file": str(groups)})
    version = make_version(tmp_path / "models", "1.1.0")
    out = subprocess.run([sys.executable, "-m", "cloud_sync.fleet.cli", "push", str(version),
                          "--group", "labb", "--config", str(cfg.origin), "--timeout", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 2
    assert "group 'labb' is not in" in out.stderr and "(groups: lab)" in out.stderr
