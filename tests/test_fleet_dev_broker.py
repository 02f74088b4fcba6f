"""`edgelens-fleet broker --dev` (issue 13): a development broker, its logins and the configs a
device and the fleet need, in one command; the configs it writes work with the real commands."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib

import pytest

from cloud_sync.fleet.localbroker import free_port
from cloud_sync.mqtt_client import LinkSettings, MqttLink
from device.config import load
from fixtures_broker import requires_mosquitto
from sync_helpers import ROOT, python, stop_process, sync_agent_process, wait_until

pytestmark = [pytest.mark.broker, requires_mosquitto]

NOT_AUTHORIZED = 0x87


class Output:
    """A subprocess's merged output, read on a thread (so waiting for a line never blocks)."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.text = proc, ""
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in iter(self.proc.stdout.readline, b""):
            self.text += line.decode(errors="replace")

    def wait_for(self, needle: str, timeout: float) -> bool:
        wait_until(lambda: needle in self.text or self.proc.poll() is not None, timeout)
        return needle in self.text

    def rest(self, timeout: float = 5.0) -> str:
        self._thread.join(timeout)
        return self.text


def _two_ports() -> tuple[int, int]:
    while True:
        a, b = free_port(), free_port()
        if a != b:
            return a, b


def _fleet(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cloud_sync.fleet.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_dev_broker_serves_a_device_and_the_fleet_and_stops_cleanly(tmp_path):
    port, fleet_port = _two_ports()
    folder = tmp_path / "dev"
    broker = python("-m", "cloud_sync.fleet.cli", "broker", "--dev", "--port", str(port),
                    "--fleet-port", str(fleet_port), "--dir", str(folder), "--devices", "2")
    out = Output(broker)
    procs = []
    watch = intruder = pid = None
    try:
        assert out.wait_for("broker ready", 30), out.text
        pid = int(re.search(r"mosquitto pid (\d+)", out.text).group(1))
        assert _alive(pid)
        # the configs are printed and written; each loads and names this broker's listeners
        device_file, fleet_file = folder / "device-1.toml", folder / "fleet.toml"
        for path in (device_file, fleet_file):
            assert path.read_text() in out.text, path
        assert (folder / "device-2.toml").is_file()
        device_cfg, fleet_cfg = load(device_file), load(fleet_file)
        assert (device_cfg.mqtt.port, fleet_cfg.mqtt.port) == (port, fleet_port)
        assert device_cfg.updates.group == "dev" and fleet_cfg.mqtt.username == "fleet"
        assert tomllib.loads((folder / "groups.toml").read_text())["groups"] == {
            "dev": ["device-1", "device-2"]}

        # keygen writes the key both configs name; then the real commands, as a user runs them
        keygen = _fleet("keygen", "--out", str(folder / "keys" / "fleet"))
        assert keygen.returncode == 0, keygen.stderr
        assert os.path.samefile(device_cfg.updates.trusted_keys[0], folder / "keys" / "fleet.pub")
        statuses: dict[str, dict] = {}
        watch = MqttLink(LinkSettings.from_config(fleet_cfg.mqtt, "test-watch"),
                         on_message=lambda t, p, _: statuses.__setitem__(
                             t, json.loads(p) if p else {}))
        watch.subscribe("edgelens/+/update/status")
        watch.start_connected(10)
        procs.append(sync_agent_process(device_file))
        procs.append(python("-m", "cloud_sync.fleet.cli", "ingest", "--config", str(fleet_file),
                            "--worker-id", "dev-ingest"))
        # the device's update status (its group) reaches the fleet login ...
        topic = "edgelens/device-1/update/status"
        assert wait_until(lambda: statuses.get(topic, {}).get("group") == "dev", 30), \
            (statuses, [stop_process(p) for p in procs])

        # ... and its availability and status reach the fleet database through ingest
        def online() -> bool:
            rows = _fleet("status", "--config", str(fleet_file), "--json")
            return rows.returncode == 0 and any(
                r["device"] == "device-1" and r["online"] for r in json.loads(rows.stdout))
        assert wait_until(online, 30, interval=0.5), [stop_process(p) for p in procs]

        # the ACL rendered from groups.toml is in force: device-2 cannot publish as device-1
        acks: dict[int, int] = {}
        d2 = load(folder / "device-2.toml")
        intruder = MqttLink(LinkSettings.from_config(d2.mqtt, "device-2"),
                            on_ack=lambda mid, reason: acks.__setitem__(mid, reason))
        intruder.start_connected(10)
        mid = intruder.publish("edgelens/device-1/update/status", b"{}", qos=1)
        assert wait_until(lambda: mid in acks, 10)
        assert acks[mid] == NOT_AUTHORIZED
        own = intruder.publish("edgelens/device-2/status", b"{}", qos=1)
        assert wait_until(lambda: own in acks, 10) and acks[own] in (0, 0x10)
    finally:
        for link in (watch, intruder):
            if link is not None:
                link.stop()
        for proc in procs:
            stop_process(proc)
        if broker.poll() is None:
            broker.send_signal(signal.SIGTERM)
        try:
            code = broker.wait(20)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait()
            code = "hung"
    text = out.rest()
    assert code == 0, text
    assert "broker stopped" in text and "Traceback" not in text
    assert pid is not None and wait_until(lambda: not _alive(pid), 5), \
        "mosquitto outlived edgelens-fleet broker"
    assert (folder / "broker" / "mosquitto.db").is_file()           # persistence on


def test_dev_broker_keeps_its_logins_and_says_what_is_wrong(tmp_path):
    port, fleet_port = _two_ports()
    folder = tmp_path / "dev"
    # without --dev: a clear refusal, exit 2
    plain = _fleet("broker", "--dir", str(folder))
    assert plain.returncode == 2 and "broker --dev" in plain.stderr, plain.stderr
    # a port in use: named, exit 2, nothing started
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        taken = _fleet("broker", "--dev", "--port", str(port), "--fleet-port",
                       str(fleet_port), "--dir", str(folder))
    assert taken.returncode == 2 and f"port {port}" in taken.stderr, taken.stderr
    assert "Traceback" not in taken.stderr

    # started twice in one folder: the same logins (running devices keep working), and a
    # SIGINT (Ctrl-C) stops it cleanly too
    passwords = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        proc = python("-m", "cloud_sync.fleet.cli", "broker", "--dev", "--port", str(port),
                      "--fleet-port", str(fleet_port), "--dir", str(folder))
        out = Output(proc)
        try:
            assert out.wait_for("broker ready", 30), out.text
            passwords.append(load(folder / "device-1.toml").mqtt.password)
        finally:
            proc.send_signal(signum)
            try:
                code = proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = "hung"
        assert code == 0, out.rest()
        time.sleep(0.2)
    assert passwords[0] == passwords[1] and len(passwords[0]) >= 16
