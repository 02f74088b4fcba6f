"""The MQTT link against a real Mosquitto with TLS and a password file."""

import threading
import time

import pytest

from cloud_sync.errors import LinkError
from cloud_sync.fleet.ingest import FleetIngest
from cloud_sync.fleet.store import open_fleet_store
from cloud_sync.mqtt_client import LinkSettings, MqttLink
from cloud_sync.sync_agent import SyncAgent
from device.telemetry import Recorder
from fixtures_broker import config_for

pytestmark = pytest.mark.broker


def _tls_mqtt(broker, login, **extra):
    return {"port": broker.port, "tls": True, "ca_file": str(login.ca_file),
            "username": login.username, **extra}


def test_tls_password_login_syncs_records_end_to_end(tmp_path, tls_broker):
    broker, login = tls_broker
    pw = tmp_path / "password"
    pw.write_text(login.password + "\n")
    cfg = config_for(tmp_path, broker, mqtt=_tls_mqtt(broker, login, password_file=str(pw)))
    recorder = Recorder.open(cfg.telemetry)
    for i in range(50):
        recorder.log_event("INFO", "tls.test", {"i": i})
    recorder.close()

    fleet = open_fleet_store(cfg.fleet.db)
    stop = threading.Event()
    ingest = FleetIngest(cfg, fleet, "tls-worker")
    agent = SyncAgent(cfg, store=None)
    threads = [threading.Thread(target=ingest.run, args=(stop,)),
               threading.Thread(target=agent.run, args=(stop,))]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 15
        while fleet.record_count("glasses-1") < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fleet.seqs("glasses-1") == list(range(1, 51))
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        fleet.close()


def test_tls_wrong_password_is_refused_not_reported_connected(tmp_path, tls_broker):
    broker, login = tls_broker
    cfg = config_for(tmp_path, broker, mqtt=_tls_mqtt(broker, login, password="wrong"))
    link = MqttLink(LinkSettings.from_config(cfg.mqtt, "bad-login"))
    link.start()
    try:
        assert not link.wait_connected(1.5)
        assert "refused" in link.last_error
    finally:
        link.stop()


def test_tls_with_unknown_ca_file_is_a_named_error(tmp_path, tls_broker):
    broker, login = tls_broker
    cfg = config_for(tmp_path, broker,
                     mqtt=_tls_mqtt(broker, login, ca_file=str(tmp_path / "missing.pem")))
    with pytest.raises(LinkError, match="TLS setup failed"):
        MqttLink(LinkSettings.from_config(cfg.mqtt, "x"))


def test_client_certificate_login(tmp_path, cert_broker):
    broker, login = cert_broker
    cfg = config_for(tmp_path, broker, mqtt={
        "port": broker.port, "tls": True, "ca_file": str(login.ca_file),
        "cert_file": str(login.client_cert), "key_file": str(login.client_key)})
    link = MqttLink(LinkSettings.from_config(cfg.mqtt, "glasses-1"))
    link.start()
    try:
        assert link.wait_connected(10), link.last_error
    finally:
        link.stop()
    anonymous = MqttLink(LinkSettings.from_config(
        config_for(tmp_path, broker, mqtt={"port": broker.port, "tls": True,
                                           "ca_file": str(login.ca_file)}).mqtt, "nobody"))
    anonymous.start()
    try:
        assert not anonymous.wait_connected(1.5)
    finally:
        anonymous.stop()
