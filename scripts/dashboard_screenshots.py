"""Screenshots of the fleet dashboard for docs/: docs/dashboard.png, docs/dashboard-device.png.

    .venv/bin/python scripts/dashboard_screenshots.py [--out docs]

Fills a throwaway fleet store with an hour of made-up telemetry from four devices (real
batches through the store's own insert path; a recognizer update halfway, one device running
a challenger in shadow mode), writes a rollout file, starts `edgelens-fleet dashboard` on a
free port and photographs it in Debian's headless Chromium (/usr/bin/chromium) via Playwright.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cloud_sync import batch as codec  # noqa: E402
from cloud_sync.fleet.localbroker import free_port  # noqa: E402
from cloud_sync.fleet.rollout import Rollout, RolloutFile, record_status  # noqa: E402
from cloud_sync.fleet.store import open_fleet_store  # noqa: E402
from device.telemetry.records import StoredRecord  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DEVICES = {"glasses-0001": 28.0, "glasses-0002": 33.0, "glasses-0003": 41.0, "glasses-0100": 30.0}


def fill_store(db: Path, now: int) -> None:
    store = open_fleet_store(db)
    for i, (device, base) in enumerate(DEVICES.items()):
        records, seq = [], 0
        for minute in range(60, 0, -1):
            wall = now - minute * 60 * 10**9
            updated = minute < 30 and device not in ("glasses-0003", "glasses-0100")
            p95 = base * (0.8 if updated else 1.0) + 6 * ((minute * (i + 3)) % 5) / 4
            shadow = device == "glasses-0002" and minute < 40
            counts = {"frames_captured": 1800, "frame_deadline_misses": int(
                1800 * (0.004 + 0.01 * (p95 > 40) + 0.002 * (minute % 3)))}
            if shadow:
                counts.update(shadow_pairs=40, shadow_agree=37 + minute % 3, shadow_skipped=2)
            metric = {"window_s": 60.0, "counts": counts, "stats": {
                "frame_path": {"n": 1800, "p50": round(p95 * 0.55, 2), "p95": round(p95, 2)},
                "latency_ms.recognize": {"n": 300, "p50": 9.0, "p95": round(p95 * 0.4, 2)},
                "latency_ms.detect": {"n": 1800, "p50": 6.0, "p95": round(p95 * 0.3, 2)}}}
            models = {"detector": {"name": "detector", "version": "2.0.0"},
                      "recognizer": {"name": "recognizer",
                                     "version": "2.1.0" if updated else "2.0.0"}}
            prediction = {"models": models, "confidence": 0.93}
            if shadow:
                prediction["shadow"] = {"name": "recognizer", "version": "2.2.0-rc1",
                                        "agree": True}
            for kind, body in (("metric", metric), ("prediction", prediction)):
                seq += 1
                records.append(StoredRecord(seq, kind, wall, 1, "before", json.dumps(body)))
        batch = codec.decode(codec.encode(device, "now", (now, 10**9), records), 1 << 26)
        store.insert_batch(batch, now, "screenshot")
        store.set_availability(device, device != "glasses-0100", now)
        store.set_status(device, {"backlog_total": [0, 12, 0, 3480][i]}, now)
    store.close()


def write_rollouts(path: Path) -> None:
    r = Rollout(id="recognizer-2.1.0-20261126T1400", group="field", name="recognizer",
                version="2.1.0", source="models/recognizer/2.1.0", previous="2.0.0",
                stage="all", canaries=["glasses-0001"], reason="1/1 canaries healthy")
    for device, entry in {
            "glasses-0001": {"state": "healthy", "active": "2.1.0"},
            "glasses-0002": {"state": "healthy", "active": "2.1.0"},
            "glasses-0003": {"state": "downloading", "progress": 64.0, "active": "2.0.0"},
            "glasses-0100": {"state": "rolled_back", "active": "2.0.0",
                             "reason": "p95 frame path 61 ms over the 45 ms budget"}}.items():
        record_status(r, device, dict(entry, rollout=r.id, version="2.1.0"))
    RolloutFile(path).save(r)


def wait_for(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs"), help="folder for the PNGs")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        db, rollouts, port = Path(tmp) / "fleet.sqlite", Path(tmp) / "rollouts.json", free_port()
        fill_store(db, time.time_ns())
        write_rollouts(rollouts)
        server = subprocess.Popen(
            [sys.executable, "-m", "cloud_sync.fleet.cli", "dashboard", "--db", str(db),
             "--rollouts", str(rollouts), "--port", str(port), "--window", "3600",
             "--refresh", "0"], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(base + "/healthz")
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1360, "height": 900})
                for path, name in (("/", "dashboard.png"),
                                   ("/device/glasses-0002", "dashboard-device.png")):
                    page.goto(base + path)
                    page.screenshot(path=str(out / name), full_page=True)
                    print(f"wrote {out / name}")
                browser.close()
        finally:
            server.terminate()
            server.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
