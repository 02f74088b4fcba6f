"""edgelens-fleet as a new user meets it (issue 13): a push to a group without devices, the
rollout summary with late devices, the bench's device count, global options, a closed pipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

from cloud_sync.fleet import cli as fleet_cli
from cloud_sync.mqtt_client import LinkSettings, MqttLink
from cloud_sync.fleet.rollout import Rollout, RolloutFile
from fixtures_broker import config_for
from sync_helpers import ROOT, run_agent, wait_until
from cloud_sync.fleet.acl import enroll
from update_helpers import device_config, device_store, fleet_keys, make_version

ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def fleet(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cloud_sync.fleet.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=ENV)


def retained(cfg, topic_filter: str, wait_s: float = 1.5) -> dict[str, bytes]:
    """The retained messages on the broker under `topic_filter`."""
    got: dict[str, bytes] = {}
    link = MqttLink(LinkSettings.from_config(cfg.mqtt, f"test-retained-{os.getpid()}"),
                    on_message=lambda t, p, _: got.__setitem__(t, p))
    link.subscribe(topic_filter)
    link.start_connected(10)
    try:
        time.sleep(wait_s)
    finally:
        link.stop()
    return {t: p for t, p in got.items() if p}


# --- 3. a push to a group with no devices ------------------------------------------------------

def test_a_push_takes_no_device_s_word_for_its_group(tmp_path, broker):
    """A device that claims group 'field' is not in it: without a groups file nothing is
    pushed at all, and a group the file does not list is refused before anything is sent."""
    key, pub = fleet_keys(tmp_path)
    device = device_config(tmp_path, broker, "glasses-1", pub, device_store(tmp_path,
                                                                            "glasses-1"),
                           updates={"group": "field"})
    no_file = device_config(tmp_path, broker, "fleet", pub, tmp_path / "fleet-models",
                            updates={"signing_key": str(key)}, fleet={"groups_file": ""})
    new = make_version(tmp_path / "fleet-models", "1.1.0")
    (tmp_path / "groups.toml").write_text('[groups]\nlab = ["glasses-2"]\n')
    with_file = device_config(tmp_path / "operator", broker, "fleet", pub,
                              tmp_path / "fleet-models", updates={"signing_key": str(key)},
                              fleet={"groups_file": str(tmp_path / "groups.toml")})
    agent = run_agent(device)                # claims group field in its retained status
    try:
        assert agent.worker.link.wait_connected(10)
        assert wait_until(lambda: retained(no_file, "edgelens/+/update/status", 0.3), 10)
        # --log-level before the subcommand: WARNING hides the INFO connection lines
        unlisted = fleet("--log-level", "WARNING", "push", str(new), "--group", "field",
                         "--config", str(no_file.origin), "--discover", "1", "--timeout", "300",
                         timeout=600)
        other = fleet("--log-level", "WARNING", "push", str(new), "--group", "field",
                      "--config", str(with_file.origin), "--discover", "1", "--timeout", "300",
                      timeout=600)
    finally:
        agent.stop()
    assert unlisted.returncode == 2, (unlisted.returncode, unlisted.stdout, unlisted.stderr)
    assert "no [fleet] groups_file" in unlisted.stderr, unlisted.stderr
    assert other.returncode == 2, (other.returncode, other.stdout, other.stderr)
    assert "group 'field' is not in" in other.stderr and "(groups: lab)" in other.stderr
    for out in (unlisted, other):
        assert "Traceback" not in out.stderr and "MQTT connected" not in out.stderr
    assert retained(no_file, "edgelens/_group/+/desired/+") == {}
    assert RolloutFile(no_file.updates.rollout_file).load() == []
    assert RolloutFile(with_file.updates.rollout_file).load() == []


def test_a_group_the_groups_file_lists_without_devices_is_refused(tmp_path, broker):
    key, pub = fleet_keys(tmp_path)
    groups = tmp_path / "groups.toml"
    groups.write_text('[groups]\nlab = ["glasses-1"]\nspare = []\n')
    fleet_cfg = device_config(tmp_path, broker, "fleet", pub, tmp_path / "fleet-models",
                              updates={"signing_key": str(key)},
                              fleet={"groups_file": str(groups)})
    new = make_version(tmp_path / "fleet-models", "1.1.0")
    out = fleet("push", str(new), "--group", "spare", "--config", str(fleet_cfg.origin),
                "--discover", "0.5", "--timeout", "20")
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "group 'spare' has no devices" in out.stderr and str(groups) in out.stderr
    assert retained(fleet_cfg, "edgelens/_group/+/desired/+") == {}


def test_wait_for_devices_waits_then_refuses_or_starts_when_one_comes(tmp_path, broker):
    key, pub = fleet_keys(tmp_path)
    store = device_store(tmp_path, "glasses-1")
    device = device_config(tmp_path, broker, "glasses-1", pub, store)
    fleet_cfg = device_config(tmp_path, broker, "fleet", pub, tmp_path / "fleet-models",
                              updates={"signing_key": str(key)})
    new = make_version(tmp_path / "fleet-models", "1.1.0")
    (tmp_path / "groups.toml").write_text("[groups]\nlab = []\n")     # not enrolled yet
    args = ["push", str(new), "--group", "lab", "--canary", "0", "--config",
            str(fleet_cfg.origin), "--discover", "0.3"]

    short = fleet(*args, "--wait-for-devices", "1", "--timeout", "30")
    assert short.returncode == 2, short.stderr
    assert "waiting up to 1 s" in short.stderr and "has no devices" in short.stderr
    assert retained(fleet_cfg, "edgelens/_group/+/desired/+", 0.5) == {}

    proc = subprocess.Popen([sys.executable, "-m", "cloud_sync.fleet.cli", *args,
                             "--wait-for-devices", "--timeout", "60"], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(iter(proc.stderr.readline, "")),
                              daemon=True)
    reader.start()
    agent = None
    try:
        assert wait_until(lambda: any("waiting up to 60 s" in line for line in err), 20), err
        assert proc.poll() is None                                   # still waiting
        enroll(tmp_path / "groups.toml", "glasses-1", "lab")          # the operator enrolls it
        agent = run_agent(device)                                    # and it comes
        proc.wait(90)                        # stderr is the reader's; stdout is short
    finally:
        if proc.poll() is None:
            proc.kill()
        if agent is not None:
            agent.stop()
    reader.join(5)
    stdout = proc.stdout.read()
    assert proc.returncode == 0, (stdout, err)
    assert ": done (1/1 healthy" in stdout
    assert any("glasses-1 in" in line and "starting the rollout" in line for line in err), err


# --- 4. the rollout summary counts late devices; the bench's device count ----------------------

def test_rollout_status_summary_counts_devices_serve_updated_later(tmp_path):
    from cloud_sync.fleet.serve import RolloutService, Served
    groups = tmp_path / "groups.toml"
    groups.write_text('[groups]\nlab = ["glasses-1", "glasses-2", "glasses-3"]\n')
    cfg = config_for(tmp_path, None, updates={"rollout_file": str(tmp_path / "rollouts.json")},
                     fleet={"groups_file": str(groups)})
    rollouts = RolloutFile(cfg.updates.rollout_file)
    ended = Rollout(id="r1", group="lab", name="detector", version="1.1.0",
                    source=str(tmp_path), stage="done", reason="1/1 healthy, 0 failed",
                    members=["glasses-1"], devices={"glasses-1": {
                        "state": "healthy", "rollout": "r1", "version": "1.1.0",
                        "active": "1.1.0"}})
    rollouts.save(ended)
    # what `edgelens-fleet serve` does when a late device reports: its own code path
    service = RolloutService(cfg, rollouts)
    service.served["r1"] = Served(rollouts.latest("lab"), {}, 1024)
    for device, state in (("glasses-2", "healthy"), ("glasses-3", "downloading")):
        status = {"device": device, "group": "lab", "models": {"detector": {
            "state": state, "rollout": "r1", "version": "1.1.0", "progress": 40}}}
        service._dispatch(f"edgelens/{device}/update/status", json.dumps(status).encode())
    service._save()
    assert sorted(rollouts.latest("lab").devices) == ["glasses-1", "glasses-2", "glasses-3"]

    out = fleet("rollout", "status", "--config", str(cfg.origin))
    assert out.returncode == 0, out.stderr
    header = out.stdout.splitlines()[0]
    assert "stage done  2/3 healthy, 0 failed, 1 updating" in header, header
    as_json = fleet("rollout", "status", "--config", str(cfg.origin), "--json")
    summary = json.loads(as_json.stdout)[0]["summary"]
    assert summary == {"devices": 3, "healthy": 2, "failed": 0, "updating": 1, "pending": 0}


def test_bench_updates_reports_the_device_count_it_ran():
    from cloud_sync.benchmarks.updates import report_lines
    results = {"devices": 3, "size_bytes": 2_000_000,
               "update": {"seconds": 4.2, "healthy": 3, "bytes_served": 6_000_000},
               "frame_path_p95_ms": {"idle": 9.0, "during_update": 11.0,
                                     "frames_dropped_during_update": 0,
                                     "during_one_device_update": 10.0,
                                     "frames_dropped_during_one_device_update": 0},
               "resume": {"had_percent": 40, "resent_bytes": 65536, "size_bytes": 2_000_000,
                          "stage": "done"}}
    text = "\n".join(report_lines(results))
    assert "on 3 devices" in text and "during the 3-device update" in text
    assert "10-device" not in text
    parser = fleet_cli.build_parser()
    assert parser.parse_args(["bench-updates", "--devices", "3"]).devices == 3


# --- 5. global options, a reader that leaves -----------------------------------------------------

def _rollout_file(cfg, devices: int) -> None:
    RolloutFile(cfg.updates.rollout_file).save(Rollout(
        id="r-many", group="lab", name="detector", version="1.1.0", source="/nowhere",
        stage="all", members=[f"glasses-{i:05d}" for i in range(devices)]))


def test_config_and_log_level_go_before_or_after_the_subcommand_and_version(tmp_path):
    cfg = config_for(tmp_path, None, updates={"rollout_file": str(tmp_path / "r.json")})
    _rollout_file(cfg, 2)
    before = fleet("--config", str(cfg.origin), "--log-level", "DEBUG", "rollout", "status")
    after = fleet("rollout", "status", "--config", str(cfg.origin), "--log-level", "ERROR")
    for out in (before, after):
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("r-many  group lab"), out.stdout
    assert before.stdout == after.stdout
    parser = fleet_cli.build_parser()
    for argv in (["--log-level", "DEBUG", "push", "v", "--group", "g"],
                 ["push", "v", "--group", "g", "--log-level", "DEBUG"]):
        assert parser.parse_args(argv).log_level == "DEBUG"
    assert parser.parse_args(["--config", "a.toml", "serve"]).config == "a.toml"
    assert parser.parse_args(["--config", "a.toml", "serve", "--config", "b.toml"]).config \
        == "b.toml"
    version = fleet("--version")
    assert version.returncode == 0 and version.stdout.startswith("edgelens-fleet "), version


def test_rollout_status_into_a_closed_pipe_ends_quietly(tmp_path):
    cfg = config_for(tmp_path, None, updates={"rollout_file": str(tmp_path / "r.json")})
    _rollout_file(cfg, 3000)              # ~250 KB of rows: more than a pipe holds
    out = subprocess.run(
        ["bash", "-c", f'"{sys.executable}" -m cloud_sync.fleet.cli rollout status '
                       f'--config "{cfg.origin}" | head -1; exit "${{PIPESTATUS[0]}}"'],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=ENV)
    assert out.stdout.startswith("r-many  group lab") and out.stdout.count("\n") == 1
    assert "BrokenPipeError" not in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 0, out.stderr
