"""The simulator and the demo as a new user runs them: clear failures, no hangs, Ctrl-C."""

import json
import signal
import subprocess
import sys
import time

import pytest

EDGELENS = [sys.executable, "-m", "device"]


@pytest.mark.parametrize("args, message", [
    (["--source", "video:/no/such/clip.mp4"], "video:/no/such/clip.mp4: no such file"),
    (["--source", "images:/no/such/folder"], "no such directory"),
    (["--source", "webcam:7"], "webcam:7: camera cannot be opened"),
    (["--source", "video:/tmp"], "is a directory"),
    (["--source", "synthetic", "--record", "/tmp"], "--record /tmp: is a directory"),
    (["--source", "synthetic", "--record", "/no/such/dir/out.mp4"], "does not exist"),
    (["--source", "synthetic", "--record", "/tmp/out.xyz"], "unknown video type"),
])
def test_simulate_fails_fast_with_one_clear_line(args, message):
    out = subprocess.run(EDGELENS + ["simulate", "--headless", "--frames", "5"] + args,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert message in out.stderr
    assert "Traceback" not in out.stderr and "[ERROR" not in out.stderr   # no OpenCV lines


@pytest.mark.slow
def test_ctrl_c_during_the_demo_writes_what_it_has_and_exits_130(tmp_path):
    demo = subprocess.Popen(EDGELENS + ["demo", "--out", str(tmp_path), "--frames", "2000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while not (tmp_path / "frame_0030.png").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    demo.send_signal(signal.SIGINT)
    out, err = demo.communicate(timeout=60)
    assert demo.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["frames"]["displayed"] < 2000
    assert (tmp_path / "demo.mp4").stat().st_size > 0


def test_a_recorder_whose_encoder_failed_never_blocks_on_close():
    import threading

    import numpy as np

    from device.live.display import VideoRecorder
    from device.metrics import Metrics
    recorder = VideoRecorder("/proc/no-such-dir/out.mp4", 30.0, Metrics(), queue_size=4)
    for _ in range(50):                       # the thread stops at the first frame; the queue
        recorder.write(np.zeros((32, 32, 3), np.uint8))   # fills and further frames drop
    closer = threading.Thread(target=recorder.close)
    closer.start()
    closer.join(10)
    assert not closer.is_alive()
    assert recorder.failed and "cannot write" in recorder.failed


@pytest.mark.slow
def test_each_folder_image_is_held_and_its_overlay_never_outlives_it(tmp_path):
    import cv2
    import numpy as np

    from device.live.sources import ImageFolderSource
    from device.synth.street import render_street
    folder = tmp_path / "photos"
    folder.mkdir()
    world = render_street(np.random.default_rng(3), width=900, height=540)
    cv2.imwrite(str(folder / "a_signs.png"), world.image)
    cv2.imwrite(str(folder / "b_blank.png"), np.full((300, 200, 3), 128, np.uint8))
    held = ImageFolderSource(str(folder), fps=10, dwell_s=0.5)
    held.open()
    frames = [held.read() for _ in range(10)]
    assert held.read() is None
    assert [f.shape for f in frames] == [(540, 900, 3)] * 10       # letterboxed to one size
    assert all(np.array_equal(frames[0], f) for f in frames[:5])   # held for 0.5 s at 10 fps
    config = tmp_path / "c.toml"
    config.write_text("[pipeline]\nhud = false\n[source]\nimage_dwell_s = 4.0\nfps = 15.0\n")
    video = tmp_path / "out.avi"
    out = subprocess.run(EDGELENS + ["--config", str(config), "simulate", "--headless",
                                     "--source", f"images:{folder}", "--record", str(video),
                                     "--json"], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["counters"].get("regions_new", 0) >= 1      # the signs were read
    capture = cv2.VideoCapture(str(video))
    shown = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        shown.append(image)
    cut = 60                                                   # 4 s at 15 fps
    assert len(shown) >= cut + 10
    assert any(f.std() > 20 for f in shown[cut - 20:cut])      # overlay over the signs
    for image in shown[cut + 1:cut + 10]:                      # the blank image: no overlay
        inner = image[60:480, 300:600]
        assert inner.std() < 8 and abs(float(inner.mean()) - 128) < 8


def test_a_paused_window_says_so_ends_on_a_stop_request_and_is_not_latency(monkeypatch):
    import threading

    import cv2
    import numpy as np

    from device.live import display as display_module
    from device.metrics import Metrics
    shown, keys = [], iter([ord(" ")])          # the user presses space, then nothing
    monkeypatch.setattr(cv2, "imshow", lambda name, image: shown.append(image.copy()))
    monkeypatch.setattr(cv2, "waitKey", lambda ms: next(keys, 255))

    class Pipeline:
        settings = type("S", (), {"hud": True})()
        stop_event = threading.Event()

    display = display_module.Display(Metrics(), window=True)
    display.pipeline = Pipeline()
    threading.Timer(0.3, Pipeline.stop_event.set).start()    # Ctrl-C while paused
    assert display(np.zeros((120, 320, 3), np.uint8), None) is False
    assert display.paused_s >= 0.25                          # measured, for the pipeline
    assert len(shown) == 2 and not np.array_equal(shown[0], shown[1])   # PAUSED drawn
    assert shown[0][100:, :].any()                                       # the keys line


def test_snapshots_go_to_their_folder_and_never_overwrite_each_other(tmp_path):
    import numpy as np

    from device.live.display import Display
    from device.metrics import Metrics
    shots = tmp_path / "shots"
    first = Display(Metrics(), snapshot_dir=str(shots))
    a = first.snapshot(np.zeros((8, 8, 3), np.uint8))
    b = first.snapshot(np.ones((8, 8, 3), np.uint8))
    c = Display(Metrics(), snapshot_dir=str(shots)).snapshot(np.zeros((8, 8, 3), np.uint8))
    assert len({a, b, c}) == 3 and all(p.parent == shots and p.is_file() for p in (a, b, c))
    assert a.name.startswith("snapshot-")


def test_edgelens_sync_takes_the_shared_flags_before_or_after_the_command(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(f'[telemetry]\ndb_path = "{tmp_path / "t.sqlite"}"\n')
    sync = [sys.executable, "-m", "cloud_sync.sync_cli"]
    version = subprocess.run(sync + ["--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and "edgelens-sync" in version.stdout
    for args in (["--config", str(config), "status", "--json"],
                 ["status", "--config", str(config), "--json"],
                 ["--log-level", "WARNING", "status", "--config", str(config), "--json"]):
        out = subprocess.run(sync + args, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, (args, out.stderr)
        assert json.loads(out.stdout)["db_path"] == str(tmp_path / "t.sqlite")
