"""Hostile records the fleet met in an audit: numbers no float sum survives, text no terminal or
UTF-8 should take, rows the decoder cannot read, records dated decades ahead, a device whose
seq restarted. Each is refused, counted per device and reason, and the rest of its batch
stored; `status`, `rollout status` and the dashboard render whatever the store holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib

import pytest

from cloud_sync import batch as batch_codec
from cloud_sync.batch import Batch
from cloud_sync.cli_common import load_config
from cloud_sync.fleet.dashboard.charts import line_chart
from cloud_sync.fleet.dashboard.view import FleetView, ViewSettings
from cloud_sync.fleet.delivery import parse_status
from cloud_sync.fleet.device_input import printable
from cloud_sync.fleet.ingest import FleetIngest
from cloud_sync.fleet.localbroker import free_port
from cloud_sync.fleet.rollout import Rollout, RolloutFile, record_status
from cloud_sync.fleet.store import open_fleet_store
from cloud_sync.mqtt_client import LinkSettings, MqttLink
from fixtures_broker import config_for
from sync_helpers import ROOT, run_ingest, wait_until

NOW = time.time_ns()
YEAR_NS = 365 * 86_400 * 10**9
GOOD_METRIC = {"window_s": 1.0, "counts": {"frames_captured": 30, "deadline_misses": 3},
               "stats": {"frame_path": {"n": 30, "p50": 20.0, "p95": 40.0}}, "gauges": {}}
GOOD_PREDICTION = {"models": {"recognizer": {"name": "crnn", "version": "3"}}}
HUGE_INT = "9" * 400                   # valid JSON; no float holds it
FORGED = ("3\nglasses-0042        yes    2026-01-01T00:00:00Z       0   30.0    0.0     0  "
          "recognizer=crnn@3\x1b]0;pwned\x07\x1b[8m")


def _row(seq, kind, body, wall=None, mono=None, boot="b1") -> str:
    """One record row as JSON text; `body` as text is spliced in unparsed (a huge integer, a
    \\ud800 escape go through the real decoder)."""
    text = body if isinstance(body, str) else json.dumps(body)
    return (f"[{seq},{json.dumps(kind)},{NOW if wall is None else wall},"
            f"{501 if mono is None else mono},{json.dumps(boot)},{text}]")


def _payload(device, rows, boot="b1") -> bytes:
    head = json.dumps({"v": 1, "device": device, "boot_id": boot, "sent_wall_ns": NOW,
                       "sent_mono_ns": 10_000})
    return zlib.compress(f'{head[:-1]},"records":[{",".join(rows)}]}}'.encode())


def _ingest(store) -> FleetIngest:
    """A real worker whose link never connects, fed through `_handle` (paho's callback)."""
    return FleetIngest(load_config(None), store, "w1")


def _fleet_cli(*args: str) -> subprocess.CompletedProcess:
    """`edgelens-fleet ARGS` in a subprocess writing strict UTF-8, as to a terminal."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONIOENCODING="utf-8")
    return subprocess.run([sys.executable, "-m", "cloud_sync.fleet.cli", *args], cwd=ROOT,
                          env=env, capture_output=True, timeout=120, check=False)


def _status(db: str) -> tuple[list[str], list[dict]]:
    """(the lines of `status`, the rows of `status --json`); both must succeed."""
    text, js = _fleet_cli("status", "--db", db), _fleet_cli("status", "--db", db, "--json")
    assert (text.returncode, js.returncode) == (0, 0), (text.stderr + js.stderr)[-600:]
    return text.stdout.decode().splitlines(), json.loads(js.stdout)


def _terminal_safe(lines: list[str]) -> bool:
    return all(line.isprintable() for line in lines)


def test_numbers_no_sum_survives_are_refused_and_status_renders(fleet_db):
    """A huge integer p50, a p95 of 1.5e308 and a window of 5e-324 s passed ingest and took
    `status` (text and --json) down for the whole fleet; now each is refused."""
    store = open_fleet_store(fleet_db)
    stats = {"frame_path": {"n": 1, "p50": 1.0, "p95": 1.0}}
    bad = [json.dumps({**GOOD_METRIC, "stats": stats}).replace('"p50": 1.0', f'"p50": {HUGE_INT}'),
           {**GOOD_METRIC, "stats": {"frame_path": {"n": 2, "p50": 1.0, "p95": 1.5e308}}},
           {**GOOD_METRIC, "window_s": 5e-324},
           {**GOOD_METRIC, "stats": {"frame_path": {"n": 2, "p50": "fast", "p95": 1.0}}}]
    rows = [_row(1, "metric", GOOD_METRIC)] + [_row(s, "metric", b) for s, b in
                                                enumerate(bad, start=2)]
    assert _ingest(store)._handle("edgelens/glasses-7/telemetry", _payload("glasses-7", rows),
                                  None) is True
    assert store.seqs("glasses-7") == [1]
    assert store.refused() == {"glasses-7": {"metric.schema": 4}}
    store.close()
    lines, [row] = _status(fleet_db)
    assert lines[1].split()[4:] == ["30.0", "0.1", "0", "frame_path=40.0"]
    assert lines[2] == "refused input (records or messages, by reason): glasses-7 " \
                       "metric.schema=4"
    assert (row["frames_per_s"], row["p95_ms"]) == (30.0, {"frame_path": 40.0})


def test_rows_stored_before_the_checks_break_neither_status_nor_the_dashboard(fleet_db,
                                                                              tmp_path):
    """Rows another writer (or an older fleet) stored: a view leaves out what it cannot add up
    or show, and a chart leaves out values no axis holds."""
    store = open_fleet_store(fleet_db)
    store.insert_batch(Batch("dev-a", "b1", NOW, 10_000, [
        (1, "metric", NOW, 501, "b1", GOOD_METRIC),
        (2, "prediction", NOW, 502, "b1", GOOD_PREDICTION)]), NOW, "w")
    big_p50 = json.dumps({**GOOD_METRIC, "stats": {"frame_path": {"n": 1, "p50": 1.0,
                                                                 "p95": 1.0}}})
    bad = [("metric", big_p50.replace('"p50": 1.0', f'"p50": {HUGE_INT}')),
           ("metric", json.dumps({**GOOD_METRIC, "stats": {
               "frame_path": {"n": 2, "p50": 1.0, "p95": 1.5e308}}})),
           ("metric", json.dumps({**GOOD_METRIC, "window_s": 5e-324})),
           ("prediction", '{"models": {"recognizer": {"name": "crnn", "version": "3\\ud800"}}}'),
           ("prediction", json.dumps({"models": {"recognizer": {"name": "crnn",
                                                                "version": FORGED}}}))]
    for seq, (kind, body) in enumerate(bad, start=10):
        store.execute("INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?)",
                      ["dev-a", seq, kind, NOW, 1, "b1", NOW - 10**9, NOW, body])
    view = FleetView(store, ViewSettings(300, 3600, 60, str(tmp_path / "none.json")))
    page = view.overview()
    assert [(r.frames_per_s, r.p95_ms, r.models) for r in page["rows"]] == [
        (30.0, {"frame_path": 40.0}, {"recognizer": "crnn@3"})]
    assert view.device("dev-a")["row"].models == {"recognizer": "crnn@3"}
    store.close()
    lines, [row] = _status(fleet_db)
    assert _terminal_safe(lines) and len(lines) == 2
    assert (row["frames_per_s"], row["models"]) == (30.0, {"recognizer": "crnn@3"})
    chart = line_chart("x", "t", "ms", {"a": [(0, 1.5e308), (1, 2.0)],
                                        "b": [(0, float("inf"))]}, (0, 1))
    assert [line.label for line in chart.lines] == ["a"]


def test_text_a_terminal_or_utf_8_cannot_take_is_refused(fleet_db):
    """A lone surrogate (JSON's \\ud800) or a control character in text the views show
    (stage, model name and version, the shadow challenger, a latency path) is refused as
    `record.text`; before, `status` died (UnicodeEncodeError) or printed a forged row."""
    store = open_fleet_store(fleet_db)
    hostile = [
        ("prediction", '{"models": {"recognizer": {"name": "crnn", "version": "3\\ud800"}}}'),
        ("prediction", {"models": {"recognizer": {"name": "crnn", "version": FORGED}}}),
        ("prediction", {"models": {"recognizer\x1b[2J": {"name": "crnn", "version": "3"}}}),
        ("prediction", {**GOOD_PREDICTION, "shadow": {"name": "c\u009b", "version": "4"}}),
        ("metric", {**GOOD_METRIC, "stats": {"frame\npath": {"n": 1, "p95": 1.0}}})]
    rows = [_row(1, "prediction", GOOD_PREDICTION)] + [
        _row(seq, kind, body) for seq, (kind, body) in enumerate(hostile, start=2)]
    _ingest(store)._handle("edgelens/evil-1/telemetry", _payload("evil-1", rows), None)
    assert store.seqs("evil-1") == [1]
    assert store.refused() == {"evil-1": {"record.text": 5}}
    store.close()
    lines, [row] = _status(fleet_db)
    assert _terminal_safe(lines) and len(lines) == 3
    assert lines[1].endswith("recognizer=crnn@3") and row["models"] == {"recognizer": "crnn@3"}


def test_printable_escapes_what_a_terminal_would_act_on():
    assert printable("crnn@3 ü ✓") == "crnn@3 ü ✓"
    assert printable("a\nb\x1b[8m\x07\ud800\u202e\x9b") == \
        "a\\nb\\x1b[8m\\x07\\ud800\\u202e\\x9b"


def test_rollout_status_prints_device_reports_escaped(tmp_path):
    """An update status whose reason holds \\ud800, or a newline and escape sequences that
    forge a row, as push/serve record it; and a rollout file written before those checks."""
    rollouts = tmp_path / "rollouts.json"
    config = tmp_path / "fleet.toml"
    config.write_text(f'[updates]\nrollout_file = "{rollouts}"\n')
    r = Rollout(id="translator-2.0.0-x", group="dev", name="translator", version="2.0.0",
                source="/nowhere", members=["good-1", "evil-1", "evil-2"], stage="all")
    forged_row = ("bad\n  *good-1              [####################] 100.0% healthy      "
                  "active 2.0.0    \x1b]0;owned\x07\x1b[8m")
    for device, payload in (
            ("evil-1", (b'{"models": {"translator": {"state": "unhealthy", '
                        b'"reason": "x\\ud800"}}}')),
            ("evil-2", json.dumps({"models": {"translator": {
                "state": "unhealthy", "active": "1.1.0\x1b[8m", "reason": forged_row}}}
                ).encode())):
        record_status(r, device, parse_status(payload)[1]["translator"])
    RolloutFile(rollouts).save(r)
    done = _fleet_cli("rollout", "status", "--config", str(config))
    assert done.returncode == 0, done.stderr.decode()[-600:]
    assert r.devices["evil-1"]["reason"] == "x\\ud800"           # kept, escaped
    lines = done.stdout.decode().splitlines()
    assert _terminal_safe(lines) and len(lines) == 4
    assert lines[2].endswith("active 1.1.0\\x1b[8m bad\\n  *good-1              [#####"
                             "###############] 100.0% healthy      active 2.0.0    "
                             "\\x1b]0;owned\\x07\\x1b[8m")
    # written by an older fleet: raw text in the file
    doc = json.loads(rollouts.read_text())
    doc["rollouts"][0]["devices"]["evil-1"] = {"state": "x\n\x1b[2J", "reason": "\ud800",
                                               "rollout": r.id}
    rollouts.write_text(json.dumps(doc))
    done = _fleet_cli("rollout", "status", "--config", str(config))
    assert done.returncode == 0, done.stderr.decode()[-600:]
    assert _terminal_safe(done.stdout.decode().splitlines())
    assert _fleet_cli("rollout", "status", "--config", str(config), "--json").returncode == 0


@pytest.mark.broker
def test_a_device_batch_with_unreadable_rows_stores_the_rest(tmp_path, broker):
    """Through Mosquitto into a running worker: rows the decoder cannot read (a seq of 2**63 or
    4.0, a clock of 2**64, an unknown kind, a null body, five fields) and records the checks
    refuse (a seq of -1, a huge p50, a \\ud800 version) cost only themselves. The rest is stored, every
    refusal counted by reason, and the receipt confirms every usable seq; before, the whole
    batch was dropped (yet acknowledged)."""
    cfg = config_for(tmp_path, broker)
    ingest, fleet = run_ingest(cfg)
    receipts: list[bytes] = []
    device = MqttLink(LinkSettings(port=broker.port, client_id="glasses-7"),
                      on_message=lambda topic, payload, props: receipts.append(payload))
    device.subscribe("edgelens/glasses-7/receipt")
    device.start()
    big_p50 = json.dumps({**GOOD_METRIC, "stats": {"frame_path": {"n": 1, "p50": 1.0,
                                                                 "p95": 1.0}}})
    rows = [_row(1, "log", {"severity": "INFO"}), _row(2, "metric", GOOD_METRIC),
            _row(3, "prediction", GOOD_PREDICTION),
            _row(-1, "log", {}), _row(2**63, "log", {}), _row("4.0", "log", {}),
            _row(5, "log", {}, wall=2**64), _row(6, "trace", {}), _row(7, "log", "null"),
            '[8,"log",1,1,"b1"]',
            _row(9, "metric", big_p50.replace('"p50": 1.0', f'"p50": {HUGE_INT}')),
            _row(10, "prediction", '{"models": {"r": {"name": "c", "version": "\\ud800"}}}')]
    try:
        assert device.wait_connected(10)
        time.sleep(0.5)                                # the receipt subscription is in place
        device.publish("edgelens/glasses-7/telemetry", _payload("glasses-7", rows), qos=1)
        assert wait_until(lambda: receipts, 15)
    finally:
        device.stop()
        ingest.stop()
    # seq -1 is refused (and left out of the receipt, which the device would refuse whole)
    assert json.loads(receipts[0]) == {"v": 1, "seqs": [[1, 3], [5, 7], [9, 10]]}
    assert batch_codec.parse_receipt(receipts[0], 1024) == [1, 2, 3, 5, 6, 7, 9, 10]
    assert fleet.seqs("glasses-7") == [1, 2, 3]
    assert fleet.refused() == {"glasses-7": {
        "metric.schema": 1, "record.clock": 1, "record.schema": 3, "record.seq": 3,
        "record.text": 1}}
    assert fleet.workers()["w1"]["dropped"] == 0
    fleet.close()
    lines, _ = _status(str(cfg.fleet.db))
    assert lines[1].split()[4:] == ["30.0", "0.1", "0", "frame_path=40.0", "recognizer=crnn@3"]


def test_records_dated_far_ahead_are_dated_at_receipt_and_windows_end_now(fleet_db):
    """A record re-dated 75 years ahead was stored as such, never pruned and counted in every
    status window; now it is kept dated at its receipt (refusing it would lose it: the device
    deletes what the fleet confirms), and rows stored before that count in no window."""
    store = open_fleet_store(fleet_db)
    hour = 3600 * 10**9
    result = store.insert_batch(Batch("glasses-7", "b1", NOW, 10_000, [
        (1, "metric", NOW, 75 * YEAR_NS, "b1", GOOD_METRIC),
        (2, "log", NOW, 75 * YEAR_NS, "b1", {"severity": "ERROR"}),
        (3, "log", NOW, hour, "b1", {"severity": "ERROR"})]), NOW, "w")
    assert (result.inserted, result.refused) == (3, {})
    assert store.execute("SELECT seq, ts_ns FROM records ORDER BY seq") == [
        (1, NOW), (2, NOW), (3, NOW - 10_000 + hour)]
    for seq, kind, body in ((10, "metric", GOOD_METRIC), (11, "log", {"severity": "ERROR"})):
        store.execute("INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?)",
                      ["glasses-7", seq, kind, NOW, 1, "b1", NOW + 75 * YEAR_NS, NOW,
                       json.dumps(body)])
    [row] = store.device_rows(NOW + 10 * YEAR_NS, 300)
    assert (row.frames_per_s, row.p95_ms, row.errors_last_hour) == (None, {}, 0)
    # an hour on: the two dated at their receipt and the one an hour ahead count then
    [row] = store.device_rows(NOW + hour, 3600)
    assert (row.frames_per_s, row.errors_last_hour) == (30.0, 2)
    store.close()


@pytest.mark.parametrize("n", [3, 150])        # PostgreSQL: multi-row INSERT, then COPY
def test_a_restarted_sequence_is_a_collision_not_a_duplicate(fleet_db, n):
    """A device whose seq restarted (re-imaged, store lost) sends seqs the fleet holds: its
    records were silently taken as duplicates and confirmed. A record that differs from the
    stored one is refused as `record.collision`; the same record sent again stays a
    duplicate."""
    store = open_fleet_store(fleet_db)

    def batch(boot, text):
        return Batch("glasses-7", boot, NOW, 10_000, [
            (s, "log", NOW, 500 + s, boot, {"severity": "INFO", "msg": f"{text} {s}"})
            for s in range(1, n + 1)])
    first = store.insert_batch(batch("boot-A", "old"), NOW, "w")
    again = store.insert_batch(batch("boot-A", "old"), NOW, "w")
    other = store.insert_batch(batch("boot-B", "new"), NOW, "w")
    assert [(r.inserted, r.duplicates, r.refused) for r in (first, again, other)] == [
        (n, 0, {}), (0, n, {}), (0, 0, {"record.collision": n})]
    assert store.refused() == {"glasses-7": {"record.collision": n}}
    assert store.workers()["w"]["duplicates"] == n
    assert store.execute("SELECT body FROM records WHERE seq = 1") == [
        ('{"severity":"INFO","msg":"old 1"}',)]
    store.close()


def test_error_logs_count_alike_on_both_stores(fleet_db):
    """A log body with \\u0000 or \\ud800 (JSON carries both; PostgreSQL's jsonb neither): its
    severity counts on PostgreSQL as on SQLite (a lone surrogate is stored as U+FFFD)."""
    store = open_fleet_store(fleet_db)
    rows = [_row(1, "log", {"severity": "ERROR", "t": "a\u0000b"}),
            _row(2, "log", '{"severity": "ERROR", "t": "\\ud800"}'),
            _row(3, "log", '{"severity": "ERROR", "t": "\\ud83d\\ude00"}')]
    _ingest(store)._handle("edgelens/odd-1/telemetry", _payload("odd-1", rows), None)
    [row] = store.device_rows(time.time_ns(), 300)
    assert row.errors_last_hour == 3
    assert [json.loads(b)["t"] for (b,) in store.execute(
        "SELECT body FROM records ORDER BY seq")][1:] == ["\ufffd", "\U0001F600"]
    store.close()


def test_the_dashboard_answers_with_hostile_rows_in_the_store(tmp_path):
    """The real `edgelens-fleet dashboard` over a store holding rows stored before the checks
    (an overflowing p95, a \\ud800 version): every page answers 200 (it answered 500)."""
    db = str(tmp_path / "fleet.sqlite")
    store = open_fleet_store(db)
    store.insert_batch(Batch("good-1", "b1", NOW, 10_000, [
        (1, "metric", NOW, 501, "b1", GOOD_METRIC)]), NOW, "w")
    store.insert_batch(Batch("evil-1", "b1", NOW, 10_000, []), NOW, "w")
    for seq, kind, body in (
            (1, "metric", json.dumps({**GOOD_METRIC, "stats": {
                "frame_path": {"n": 2, "p50": 1.0, "p95": 1.5e308}}})),
            (2, "prediction", '{"models": {"r": {"name": "c", "version": "\\ud800"}}}')):
        store.execute("INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?)",
                      ["evil-1", seq, kind, NOW, 1, "b1", time.time_ns() - 10**9, NOW, body])
    store.close()
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "cloud_sync.fleet.cli", "dashboard", "--db",
                             db, "--port", str(port), "--refresh", "0", "--rollouts",
                             str(tmp_path / "none.json")], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def status(path: str) -> int:
        try:
            with urllib.request.urlopen(base + path, timeout=30) as answer:
                return answer.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0
    try:
        assert wait_until(lambda: status("/healthz") == 200 or proc.poll() is not None, 60)
        assert [status(p) for p in ("/", "/device/good-1", "/device/evil-1")] == [200] * 3
    finally:
        proc.terminate()
        proc.wait(15)
