"""edgelens-sync and edgelens-fleet command lines: help on every subcommand, status output."""

import argparse
import json
import tomllib
from pathlib import Path

import pytest

from cloud_sync import sync_cli
from cloud_sync.fleet import cli as fleet_cli
from cloud_sync import batch as batch_codec
from cloud_sync.fleet.localbroker import free_port
from cloud_sync.fleet.store import open_fleet_store
from device.telemetry import Recorder
from device.telemetry.records import StoredRecord
from fixtures_broker import config_for

ROOT = Path(__file__).resolve().parent.parent


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


@pytest.mark.parametrize("module", [sync_cli, fleet_cli])
def test_every_subcommand_has_help_text(module, capsys):
    parser = module.build_parser()
    subs = _subcommands(parser)
    assert subs
    for name, sub in subs.items():
        assert sub.description and len(sub.description) > 30, name
        with pytest.raises(SystemExit) as exit_info:
            module.main([name, "--help"])
        assert exit_info.value.code == 0
        assert capsys.readouterr().out.startswith("usage:")


def test_console_scripts_point_at_these_mains():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["edgelens-sync"] == "cloud_sync.sync_cli:main"
    assert scripts["edgelens-fleet"] == "cloud_sync.fleet.cli:main"


def test_fleet_cli_leaves_room_for_more_subcommands():
    def register_demo(sub):      # keygen/push/rollout exist now (issue 6): another name
        p = sub.add_parser("demo-plugin", help="a later subcommand", description="x" * 40)
        p.set_defaults(func=lambda args: 7)

    fleet_cli.SUBCOMMANDS.append(register_demo)
    try:
        assert fleet_cli.main(["demo-plugin"]) == 7
    finally:
        fleet_cli.SUBCOMMANDS.remove(register_demo)


def test_sync_status_json_reports_the_backlog(tmp_path, capsys):
    config_for(tmp_path, None)
    cfg = config_for(tmp_path, None)
    recorder = Recorder.open(cfg.telemetry)
    recorder.log_event("INFO", "a")
    recorder.audit("model_installed")
    recorder.close()
    assert sync_cli.main(["status", "--config", str(tmp_path / "edgelens.toml"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["backlog"] == {"audit": 1, "log": 1} and info["backlog_total"] == 2
    assert info["last_seq"] == 2 and info["counters"] == {}


def test_fleet_status_prints_one_row_per_device(fleet_db, capsys):
    db = fleet_db
    store = open_fleet_store(db)
    for device in ("glasses-2", "glasses-1"):
        rec = StoredRecord(1, "log", 1, 1, "b", '{"severity": "INFO"}')
        store.insert_batch(batch_codec.decode(batch_codec.encode(device, "b", (1, 1), [rec]),
                                              1 << 20), 10, "w")
    store.set_availability("glasses-1", True, 11)
    store.close()
    assert fleet_cli.main(["status", "--db", str(db), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["device"], r["online"], r["records"]) for r in rows] == [
        ("glasses-1", True, 1), ("glasses-2", None, 1)]
    assert set(rows[0]) == {"device", "online", "last_seen", "last_seen_age_s", "backlog",
                            "frames_per_s", "p95_ms", "miss_rate", "models",
                            "errors_last_hour", "records", "shadow"}
    assert fleet_cli.main(["status", "--db", str(db)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].startswith("device") and len(text) == 3


def test_unknown_fleet_backend_is_a_named_error(tmp_path, capsys):
    assert fleet_cli.main(["status", "--db", "mysql://fleet"]) == 2
    assert "no fleet store backend for 'mysql://fleet'" in capsys.readouterr().err


def test_unreachable_postgres_is_one_line_with_the_password_masked(capsys):
    url = f"postgresql://fleet:s3cret@127.0.0.1:{free_port()}/fleet"
    assert fleet_cli.main(["status", "--db", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgelens-fleet: cannot connect to the fleet database "
                          "postgresql://fleet:***@127.0.0.1:") and err.count("\n") == 1
    assert "s3cret" not in err
