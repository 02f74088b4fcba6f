"""Contracts of the telemetry/sync code: import direction, documented config keys, topics."""

import ast
from pathlib import Path

from cloud_sync import topics
from device.config import defaults, parse_text, to_toml
from device.config_schema import FLEET, MQTT, SYNC, TELEMETRY

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_device_never_imports_cloud_sync():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "device").rglob("*.py")
                 if any(n.split(".")[0] == "cloud_sync" for n in _imports(p))]
    assert offenders == []


def test_only_mqtt_client_imports_paho_and_only_the_stores_import_sqlite():
    paho, sqlite = [], []
    for p in list((ROOT / "cloud_sync").rglob("*.py")) + list((ROOT / "device" /
                                                               "telemetry").rglob("*.py")):
        names = {n.split(".")[0] for n in _imports(p)}
        if "paho" in names:
            paho.append(p.relative_to(ROOT).as_posix())
        if names & {"sqlite3", "sqlite_utils"}:
            sqlite.append(p.relative_to(ROOT).as_posix())
    assert paho == ["cloud_sync/mqtt_client.py"]
    assert sorted(sqlite) == ["cloud_sync/fleet/store.py", "device/telemetry/store.py",
                            "device/telemetry/store_connection.py",
                            "device/telemetry/store_disk.py", "device/telemetry/store_errors.py"]


def test_every_telemetry_sync_and_fleet_key_is_described_and_round_trips():
    for section in (TELEMETRY, MQTT, SYNC, FLEET):
        for key in section.keys:
            assert len(key.description) > 15, f"[{section.name}] {key.name}"
    cfg = defaults()
    assert parse_text(to_toml(cfg)).as_dict() == cfg.as_dict()
    assert cfg.telemetry.max_bytes == 256 * 1024 * 1024


def test_topic_map_is_in_the_readme():
    readme = (ROOT / "cloud_sync" / "README.md").read_text()
    for channel in (topics.AVAILABILITY, topics.TELEMETRY, topics.STATUS, topics.COMMAND):
        assert f"<device>/{channel}" in readme
    assert topics.parse("edgelens", "edgelens/g-1/cmd/ping") == ("g-1", "cmd", "ping")
