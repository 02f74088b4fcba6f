"""`edgelens calibrate` and the operating point in the config: writing it into a user's file,
the pipeline using it, and the warning when a config was calibrated elsewhere."""

import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device import config
from device.errors import ConfigError
from device.modelstore.store import ModelStore
from device.operating_point import (cpu_model, mismatch, set_keys, write_operating_point)

ROOT = Path(__file__).resolve().parent.parent
HERE = {"machine": "x86_64", "cpu_model": "AMD EPYC", "cores": 2}


def _calibrated(**calibration):
    block = {"date": "2026-11-26T15:00:00Z", **HERE,
             "models": ["detector 2.0.0", "recognizer 2.0.0", "translator 2.0.0"],
             **calibration}
    return config.build({"calibration": block}, config.defaults_schema())


def test_mismatch_names_the_device_and_model_differences():
    versions = {"detector": "2.0.0", "recognizer": "2.0.0", "translator": "2.0.0"}
    assert mismatch(_calibrated(), versions, HERE) == []
    assert mismatch(config.defaults(), versions, HERE) == []        # never calibrated
    other = _calibrated(cpu_model="Cortex-A76", cores=4, models=["detector 1.0.0"])
    assert mismatch(other, versions, HERE) == [
        "cpu_model 'Cortex-A76' here 'AMD EPYC'", "cores 4 here 2",
        "detector 1.0.0 here 2.0.0"]


def test_cpu_model_is_read_on_x86_and_arm():
    assert cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n") == "AMD EPYC 7B13"
    arm = "processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd0b\n"
    assert cpu_model(arm) == "implementer 0x41 part 0xd0b"
    assert cpu_model(arm + "\nHardware\t: BCM2835\n") == "BCM2835"


def test_keys_are_set_in_place_and_the_rest_of_the_file_is_kept():
    text = ('# my glasses\n[runtime]\nnum_threads = 4  # tried by hand\nbackend = "auto"\n\n'
            '[source]\nuri = "webcam:0"\n\n[calibration]\ndate = "old"\nmeasurements = []\n')
    text = set_keys(text, "runtime", {"num_threads": 2})
    text = set_keys(text, "detector", {"input_width": 480, "input_height": 288})
    text = set_keys(text, "source", {"fps": 15.0})
    text = set_keys(text, "calibration", {"date": "new"}, replace=True)
    assert text == ('# my glasses\n[runtime]\nnum_threads = 2\nbackend = "auto"\n\n'
                    '[source]\nuri = "webcam:0"\nfps = 15.0\n\n[calibration]\ndate = "new"\n\n'
                    '[detector]\ninput_width = 480\ninput_height = 288\n')


def test_a_broken_config_is_not_overwritten(tmp_path):
    path = tmp_path / "edgelens.toml"
    path.write_text("[runtime\nnum_threads = 2\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        write_operating_point(path, {"runtime": {"num_threads": 1}}, {"date": "x"})
    assert path.read_text() == "[runtime\nnum_threads = 2\n"


def _store_config(tmp_path: Path, extra: str = "") -> Path:
    shutil.copytree(ROOT / "models", tmp_path / "models")
    path = tmp_path / "edgelens.toml"
    path.write_text(f'# the wearer\'s file\n[models]\nstore = "{tmp_path / "models"}"\n\n'
                    f'[source]\nuri = "synthetic:3"  # kept\n{extra}')
    return path


@pytest.mark.slow
def test_calibrate_quick_writes_a_config_that_the_pipeline_uses(tmp_path):
    from device.assembly import build_pipeline, load_stages
    path = _store_config(tmp_path)
    out = subprocess.run([sys.executable, "-m", "device", "calibrate", "--quick", "--json",
                          "--write", str(path), "--out", str(tmp_path / "samples")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    record = json.loads(out.stdout)
    text = path.read_text()
    assert text.startswith("# the wearer's file\n") and 'uri = "synthetic:3"  # kept' in text
    cfg = config.load(path)                                     # the loader accepts it
    chosen = record["chosen"]["settings"]
    assert cfg.calibration.machine == platform.machine()
    store = ModelStore(tmp_path / "models")
    assert cfg.calibration.models == [f"{name} {store.get(name).version}"   # the active ones
                                      for name in ("detector", "recognizer", "translator")]
    assert len(cfg.calibration.measurements) >= 3 * 2 + 1       # profiles + the verification
    assert cfg.runtime.num_threads == chosen["runtime"]["num_threads"]
    stages = load_stages(cfg, translate=False)
    assert mismatch(cfg, stages.versions) == []                 # calibrated here
    width, height = chosen["detector"]["input_width"], chosen["detector"]["input_height"]
    assert stages.detector.input_size == (width, height)
    assert stages.detector.model.num_threads == chosen["runtime"]["num_threads"]
    pipeline = build_pipeline(cfg, stages)
    assert pipeline.rate.settings.steady_rate_hz == chosen["recognition"]["steady_rate_hz"]
    assert cfg.source.fps == chosen["source"]["fps"] == pipeline.capture.source.fps


@pytest.mark.slow
def test_the_service_warns_when_its_config_was_calibrated_elsewhere(tmp_path):
    import cv2
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((360, 640, 3), 90, np.uint8))
    log_file = tmp_path / "edgelens.jsonl"
    path = _store_config(tmp_path, (
        f'image_dwell_s = 0.5\nfps = 10.0\n'
        f'[logging]\nfile = "{log_file}"\n[telemetry]\nenabled = false\n'
        f'[pipeline]\nhud = false\n'
        f'[calibration]\ndate = "2026-01-01T00:00:00Z"\nmachine = "aarch64"\n'
        f'cpu_model = "Cortex-A76"\ncores = 4\nmodels = ["detector 1.0.0"]\n'))
    path.write_text(path.read_text().replace('uri = "synthetic:3"  # kept',
                                             f'uri = "images:{folder}"'))
    out = subprocess.run([sys.executable, "-m", "device", "run", "--config", str(path)],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    warnings = [json.loads(line) for line in log_file.read_text().splitlines()
                if "calibrated on another device" in line]
    assert len(warnings) == 1, out.stderr[-3000:]
    differences = warnings[0]["fields"]["differences"]
    assert "machine 'aarch64' here " + repr(platform.machine()) in differences
    active = ModelStore(tmp_path / "models").get("detector").version
    assert f"detector 1.0.0 here {active}" in differences


def test_the_choice_follows_the_method_on_given_measurements():
    """The choosing half of calibrate on made-up profiles (the measuring half is the slow
    test above): estimates, ranking, steady rate and the fallback when nothing met both."""
    from device.benchmarks.calibrate import (Profile, candidates, fallback, frame_rate,
                                             steady_rate)
    cfg = config.defaults()
    profiles = [Profile("detector", "640x352", 2, 6.0, 7.0, 12.0),
                Profile("detector", "320x192", 2, 2.0, 3.0, 4.0),
                Profile("recognizer", "width 256", 2, 1.0, 1.5, 1.5),
                Profile("translator", "greedy", 2, 2.0, 5.0, 3.0),
                Profile("translator", "beam 3", 2, 20.0, 40.0, 25.0)]
    ranked = candidates(profiles, cfg)
    assert [(c.resolution, c.beam) for c in ranked] == [
        ("640x352", 1), ("640x352", 3), ("320x192", 1), ("320x192", 3)]
    # detect p95 + 6 x (line + translation) + one frame at 30 fps
    assert ranked[0].estimate_ms == pytest.approx(7.0 + 6 * (1.5 + 5.0) + 1000 / 30, abs=0.1)
    assert ranked[0].cpu_ms == pytest.approx(12.0 + 2 * 1.5 + 3.0)
    assert steady_rate(12.0) == 4.0 and steady_rate(20.0) == 2.0 and steady_rate(80.0) == 1.0
    # the frame rate cap: the frame path may take 25 % of a core
    assert frame_rate(4.0) == 30.0 and frame_rate(11.0) == 20.0 and frame_rate(9.0) == 24.0
    assert frame_rate(40.0) == 15.0 and frame_rate(None) == 30.0

    def tried(name, frame_p95, new_p95):
        return {"name": name, "measured": {"moving": {"frame_p95_ms": frame_p95,
                                                      "new_p95_ms": new_p95}}}

    tries = [tried("640", 16.0, 105.0), tried("480", 16.5, 88.0), tried("320", 16.0, 74.0)]
    assert fallback(tries, cfg)["name"] == "640"      # new translations within margin
    tries = [tried("640", 25.0, 170.0), tried("480", 25.0, 140.0), tried("320", 25.0, 120.0)]
    assert fallback(tries, cfg)["name"] == "480"
    tries = [tried("640", 25.0, 400.0), tried("320", 25.0, 300.0)]
    assert fallback(tries, cfg)["name"] == "320"
