"""What a user sees from the `edgelens` command: quiet start, pipes, standard input."""

import subprocess
import sys

import cv2
import numpy as np

EDGELENS = [sys.executable, "-m", "device"]


def test_config_show_into_a_closed_pipe_ends_without_a_traceback():
    shown = subprocess.Popen(EDGELENS + ["config", "show"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    first = shown.stdout.readline()          # like `| head -1`: read a line, then hang up
    shown.stdout.close()
    _, err = shown.communicate(timeout=60)
    assert first.startswith(b"#")
    assert b"Traceback" not in err and b"BrokenPipeError" not in err
    assert shown.returncode == 0


def test_the_runtime_banner_is_not_shown_at_the_default_log_level(tmp_path):
    image = tmp_path / "sign.png"
    cv2.imwrite(str(image), np.full((120, 200, 3), 200, np.uint8))
    out = subprocess.run(EDGELENS + ["ocr", str(image)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "XNNPACK" not in out.stderr and "XNNPACK" not in out.stdout
    debug = subprocess.run(EDGELENS + ["--log-level", "DEBUG", "ocr", str(image)],
                           capture_output=True, text=True, timeout=120)
    assert "XNNPACK" in debug.stderr + debug.stdout      # still there when asked for


def test_translate_reads_standard_input_and_says_how_to_use_it_without_text():
    piped = subprocess.run(EDGELENS + ["translate", "--json"], input="Ausgang\nKasse\n",
                           capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert '"source": "Ausgang"' in piped.stdout and '"source": "Kasse"' in piped.stdout
    empty = subprocess.run(EDGELENS + ["translate"], input="", capture_output=True, text=True,
                           timeout=60)
    assert empty.returncode == 2 and "no text given" in empty.stderr


def test_ctrl_c_while_the_modules_load_prints_no_traceback():
    import signal
    import time
    for delay in (0.1, 0.25, 0.4):        # while the modules load, and a little later
        run = subprocess.Popen(EDGELENS + ["translate", "Ausgang"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=60)
        assert "Traceback" not in err, (delay, err[-600:])
        assert run.returncode in (130, -signal.SIGINT, 0), (delay, run.returncode)
