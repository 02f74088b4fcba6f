"""The fleet dashboard end to end: a real sync agent sends through a real Mosquitto into a real
ingest worker and SQLite fleet store; `edgelens-fleet dashboard` serves it; Debian's headless
Chromium (driven by Playwright) shows what a user sees. Hostile strings from devices render as
text; the app is read-only. Without Chromium or Playwright the browser test is skipped, and in
CI (CI=true) it fails instead.
"""

import json
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from cloud_sync import batch as codec
from cloud_sync.fleet import cli as fleet_cli
from cloud_sync.fleet.dashboard.charts import line_chart
from cloud_sync.fleet.dashboard.series import RawHistory, build_history
from cloud_sync.fleet.dashboard.view import FleetView, ViewSettings
from cloud_sync.fleet.localbroker import free_port
from cloud_sync.fleet.rollout import Rollout, RolloutFile, record_status
from device.telemetry import ModelRef, Prediction, Recorder
from device.telemetry.records import Clock, StoredRecord
from fixtures_broker import IN_CI, config_for
from sync_helpers import python, run_agent, run_ingest, stop_process, wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
XSS_VERSION = '2.0.0"><script>alert("xss")</script>'
XSS_REASON = "<img src=x onerror=alert(2)> p95 over budget"
MINUTES = 20


def _missing(why: str) -> None:
    if IN_CI:
        pytest.fail(why + " — CI must run the browser tests")
    pytest.skip(why)


@pytest.fixture(scope="module")
def chromium():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[test]'; scripts/setup does)")
    if not CHROMIUM.is_file():
        _missing(f"{CHROMIUM} is missing: install Debian's chromium (scripts/setup does)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class PastClock(Clock):
    """Stamps records `ago_ns` in the past, of a boot the fleet never saw send (so it dates
    them by their wall clock)."""
    ago_ns: int = 0

    def now(self) -> tuple[int, int]:
        return time.time_ns() - self.ago_ns, time.monotonic_ns()


def _record_history(cfg) -> None:
    """MINUTES of per-minute metrics and predictions: recognizer 1.0.0 first, then a version
    whose name is an HTML payload; p95 25/26/27 ms, every other minute 1 miss in 30 frames."""
    clock = PastClock(boot_id="earlier-boot")
    recorder = Recorder.open(cfg.telemetry, clock=clock)
    for k in range(MINUTES, 0, -1):
        clock.ago_ns = k * 60 * 10**9
        recorder.metric({"window_s": 1.0,
                         "counts": {"frames_captured": 30, "frame_deadline_misses": k % 2},
                         "stats": {"frame_path": {"n": 30, "p50": 12.0, "p95": 25.0 + k % 3},
                                   "latency_ms.recognize": {"n": 10, "p50": 4.0, "p95": 8.0}},
                         "gauges": {}})
        version = "1.0.0" if k > MINUTES // 2 else XSS_VERSION
        recorder.prediction(Prediction("Ausgang", 0.9,
                                       {"recognizer": ModelRef("crnn", version)}))
    recorder.log_event("ERROR", "camera.lost")
    recorder.close()


def _rollout_file(path: Path) -> Path:
    r = Rollout(id="crnn-2.0.0-test", group="lab", name="recognizer", version="2.0.0",
                source="models/recognizer/2.0.0", stage="canary", canaries=["glasses-1"])
    record_status(r, "glasses-1", {"state": "unhealthy", "rollout": r.id, "version": "2.0.0",
                                   "active": "1.0.0", "reason": XSS_REASON})
    record_status(r, "glasses-9", {"state": "downloading", "rollout": r.id, "progress": 40})
    RolloutFile(path).save(r)
    return path


def _answers(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=2).status == 200
    except OSError:
        return False


@contextmanager
def _dashboard(config: Path, *extra: str):
    """`edgelens-fleet dashboard` in a subprocess on a free port; yields (base URL, process)."""
    port = free_port()
    proc = python("-m", "cloud_sync.fleet.cli", "dashboard", "--config", str(config),
                  "--port", str(port), "--refresh", "0", *extra)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: _answers(base + "/healthz") or proc.poll() is not None, 60)
        assert proc.poll() is None, stop_process(proc)
        yield base, proc
    finally:
        stop_process(proc)


@pytest.mark.slow
def test_the_dashboard_shows_what_a_real_ingest_stored(tmp_path, broker, chromium):
    cfg = config_for(tmp_path, broker)
    ingest, fleet = run_ingest(cfg)
    _record_history(cfg)
    agent = run_agent(cfg)
    try:
        assert wait_until(lambda: fleet.record_count() >= 2 * MINUTES + 1, 30), \
            fleet.record_count()
        assert wait_until(lambda: fleet.device_rows(time.time_ns(), 300)[0].backlog == 0, 15)
        assert fleet.device_rows(time.time_ns(), 300)[0].online is True
        agent.stop()                      # says `offline` (retained) as it goes
        assert wait_until(lambda: fleet.device_rows(time.time_ns(), 300)[0].online is False,
                          15)
    finally:
        agent.stop()
        ingest.stop()
        fleet.close()
    rollouts = _rollout_file(tmp_path / "rollouts.json")

    with _dashboard(tmp_path / "edgelens.toml", "--rollouts", str(rollouts),
                    "--history", str(30 * 60), "--window", "3600") as (base, proc):
        page = chromium.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        response = page.goto(base + "/")
        assert response.status == 200
        assert "script-src" not in response.headers["content-security-policy"]   # none at all
        assert "default-src 'none'" in response.headers["content-security-policy"]

        row = page.locator('table.devices tr[data-device="glasses-1"]')
        assert row.locator("td.avail").inner_text() == "offline"   # the agent stopped
        assert row.locator("td.backlog").inner_text() == "0"
        assert row.locator("td.models").inner_text() == f"recognizer: crnn@{XSS_VERSION}"
        assert "ago" in row.locator("td.last-seen").inner_text()

        # the per-device p95 plot: one point per minute of history, the values as recorded
        line = page.locator('svg[data-chart="p95-device"] g.series[data-label="glasses-1"]')
        assert line.get_attribute("data-points") == str(MINUTES)
        titles = line.locator("circle title").all_text_contents()
        assert titles == [f"glasses-1: {25 + k % 3} ms" for k in range(MINUTES, 0, -1)]
        assert len(line.locator("polyline").get_attribute("points").split()) == MINUTES
        misses = page.locator('svg[data-chart="miss-device"] g.series circle title')
        assert misses.all_text_contents() == [
            f"glasses-1: {'3.33%' if k % 2 else '0%'}" for k in range(MINUTES, 0, -1)]

        # per model version: the hostile version is a label, shown as text
        versions = page.locator('svg[data-chart="p95-version"] g.series')
        labels = {versions.nth(i).get_attribute("data-label"): int(
            versions.nth(i).get_attribute("data-points")) for i in range(versions.count())}
        assert set(labels) == {"recognizer crnn@1.0.0", f"recognizer crnn@{XSS_VERSION}"}
        assert sum(labels.values()) == MINUTES
        assert f"recognizer crnn@{XSS_VERSION}" in page.locator(
            "#chart-p95-version ul.legend").inner_text()

        # the rollout: per-device state, progress and the device's reason, as text
        rollout = page.locator('section.rollout[data-rollout="crnn-2.0.0-test"]')
        one = rollout.locator('tr[data-device="glasses-1"]')
        assert one.locator("td.state").inner_text() == "unhealthy"
        assert one.locator("td.reason").inner_text() == XSS_REASON
        assert rollout.locator('tr[data-device="glasses-9"] progress').get_attribute(
            "value") == "40.0"

        # nothing a device sent became markup or ran
        assert page.locator("script").count() == 0 and page.locator("img").count() == 0
        assert dialogs == []

        # the device page, by its link
        row.locator("td.device a").click()
        page.wait_for_url(base + "/device/glasses-1")
        assert page.locator("#device h2").inner_text().startswith("glasses-1")
        paths = page.locator('svg[data-chart="p95-path"] g.series')
        assert sorted(paths.nth(i).get_attribute("data-label")
                      for i in range(paths.count())) == ["frame_path", "recognize"]
        assert page.locator("td.reason").inner_text() == XSS_REASON
        page.close()

        # read-only: nothing but GET/HEAD is routed
        for method in ("POST", "PUT", "DELETE"):
            request = urllib.request.Request(base + "/", data=b"x", method=method)
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=5)
            assert refused.value.code == 405
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(base + "/device/%3Cscript%3E", timeout=5)
        assert missing.value.code == 404
        assert b"<script>" not in missing.value.read()
        proc.terminate()
        assert proc.wait(15) == 0
        assert "dashboard stopped" in proc.stdout.read().decode()


def test_the_pages_read_the_same_from_either_store(fleet_store, tmp_path):
    """The view over real batches in the store `open_fleet_store` returns (SQLite, then
    PostgreSQL): rows, per-device and per-version lines, the device page."""
    now, minute = time.time_ns(), 60 * 10**9
    records = []
    for k in range(6, 0, -1):
        wall = now - k * minute
        metric = {"window_s": 1.0, "counts": {"frames_captured": 10, "deadline_misses": k % 2},
                  "stats": {"frame_path": {"n": 10, "p50": 5.0, "p95": 20.0 + k}}}
        prediction = {"models": {"recognizer": {"name": "crnn",
                                                "version": "1" if k > 3 else "<b>2</b>"}}}
        records += [StoredRecord(2 * (6 - k) + 1, "metric", wall, 1, "old", json.dumps(metric)),
                    StoredRecord(2 * (6 - k) + 2, "prediction", wall, 1, "old",
                                 json.dumps(prediction))]
    fleet_store.insert_batch(codec.decode(codec.encode("glasses-1", "now", (now, 10**9),
                                                       records), 1 << 20), now, "w")
    (tmp_path / "rollouts.json").write_text('{"rollouts": [{"id": 1, "surprise": true}]}')
    view = FleetView(fleet_store, ViewSettings(window_s=3600, history_s=600, buckets=20,
                                               rollout_file=str(tmp_path / "rollouts.json")))
    page = view.overview(now)
    assert page["rollouts"] == [] and page["rollout_error"].startswith(
        f"rollout file {tmp_path / 'rollouts.json'} is unreadable: ")
    assert [r.device for r in page["rows"]] == ["glasses-1"]
    assert page["rows"][0].models == {"recognizer": "crnn@<b>2</b>"}
    charts = {c.id: c for c in page["charts"]}
    [line] = charts["p95-device"].lines
    assert [value for _, _, value in line.points] == [f"{20 + k} ms" for k in range(6, 0, -1)]
    assert {ln.label: [v for _, _, v in ln.points] for ln in charts["miss-version"].lines} == {
        "recognizer crnn@1": ["0%", "10%", "0%"], "recognizer crnn@<b>2</b>": ["10%", "0%", "10%"]}
    assert "shadow-device" not in charts             # no shadow pairs: no chart
    device = view.device("glasses-1", now)
    assert [ln.label for ln in device["charts"][1].lines] == ["frame_path"]
    assert view.device("glasses-2", now) is None and view.device("<x>", now) is None


def test_history_credits_each_bucket_to_the_models_of_its_device_then():
    since, minute = 1_000 * 10**9, 60 * 10**9
    metric = {"window_s": 1.0, "counts": {"frames_captured": 10, "deadline_misses": 1},
              "stats": {"frame_path": {"n": 10, "p50": 5.0, "p95": 9.0}}}
    models = {"recognizer": {"name": "crnn", "version": "1"}}
    raw = RawHistory(
        metrics=[("a", since + i * minute, json.dumps(metric)) for i in range(4)] +
                [("a", since + 5 * minute, "not json"), ("a", since - minute, json.dumps(metric))],
        models=[("a", 1, json.dumps({"models": models})),
                ("a", 3, {"models": {"recognizer": {"name": "crnn", "version": "2"}}})])
    history = build_history(raw, since, 60.0, 10)
    assert sorted(history.devices["a"]) == [0, 1, 2, 3]
    assert {k: sorted(v) for k, v in history.versions.items()} == {
        "recognizer crnn@1": [0, 1, 2], "recognizer crnn@2": [3]}
    bucket = history.devices["a"][2]
    assert (bucket.percentile("frame_path", "p95"), bucket.percentile("frame_path", "p50"),
            bucket.miss_rate(), bucket.agreement()) == (9.0, 5.0, 0.1, None)
    assert history.skipped == 1            # the bad body; the one before the window is not read


def test_a_chart_draws_the_highest_lines_and_counts_the_rest():
    series = {f"d{i}": [(0, float(i)), (10, float(i))] for i in range(10)}
    chart = line_chart("x", "t", "ms", series, (0, 10), max_lines=3)
    assert [line.label for line in chart.lines] == ["d7", "d8", "d9"]
    assert chart.omitted == 7
    assert [label for _, label in chart.y_ticks] == ["0 ms", "2.5 ms", "5 ms", "7.5 ms",
                                                     "10 ms"]
    assert chart.lines[2].points[0][:2] == (56.0, 12 + 180 * (1 - 9 / 10))


def test_the_dashboard_refuses_a_missing_database_in_one_line(tmp_path, capsys):
    code = fleet_cli.main(["dashboard", "--db", str(tmp_path / "none.sqlite"), "--port", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("edgelens-fleet: no fleet database at ") and err.count("\n") == 1
    assert not (tmp_path / "none.sqlite").exists()


def test_the_dashboard_says_when_its_port_is_taken(tmp_path, capsys):
    from cloud_sync.fleet.store import open_fleet_store
    open_fleet_store(tmp_path / "fleet.sqlite").close()
    with __import__("socket").socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code = fleet_cli.main(["dashboard", "--db", str(tmp_path / "fleet.sqlite"),
                               "--port", str(port)])
    assert code == 2
    # the one line the user sees (an earlier in-process CLI's log handler may still hold a
    # stream pytest has closed, and report that on stderr too)
    assert (f"edgelens-fleet: 127.0.0.1:{port} is in use; pick another with --host/--port"
            in capsys.readouterr().err.splitlines())
