"""`edgelens translate-image` and the grouping of lines into text blocks."""

import json
import subprocess
import sys

import cv2
import numpy as np

from device.live.text_blocks import Line, group


def _quad(x, y, w, h):
    return np.float32([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])


def test_lines_of_one_sign_form_one_block_and_other_signs_stay_apart():
    lines = [Line(_quad(100, 100, 160, 30), "Bitte nicht", 0.9),
             Line(_quad(110, 136, 120, 30), "rauchen", 0.8),          # just below, aligned
             Line(_quad(400, 100, 150, 30), "Ausgang", 0.95),          # beside: another sign
             Line(_quad(100, 300, 150, 30), "Kasse", 0.9)]             # far below
    blocks = group(lines)
    assert [b.text for b in blocks] == ["Bitte nicht rauchen", "Ausgang", "Kasse"]
    assert blocks[0].confidence == 0.8
    box = blocks[0].polygon
    assert box[:, 1].min() <= 100 and box[:, 1].max() >= 166          # covers both lines
    # a much smaller line under a big one is not the same text (a caption, a house number)
    assert len(group([Line(_quad(0, 0, 300, 60), "Bahnhof", 0.9),
                      Line(_quad(0, 66, 100, 14), "Gleis 1-4", 0.9)])) == 2


def test_translate_image_writes_the_overlay_and_reports_bad_files(tmp_path):
    from device.synth.street import render_street
    world = render_street(np.random.default_rng(3), width=900, height=540)
    photo = tmp_path / "street.png"
    cv2.imwrite(str(photo), world.image)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    out = subprocess.run([sys.executable, "-m", "device", "translate-image", str(photo),
                          str(tmp_path / "broken.jpg"), "--out", str(tmp_path / "out"),
                          "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 1                        # one file failed, the other was done
    results = json.loads(out.stdout)
    good, bad = results
    assert "error" in bad and "not a readable image" in bad["error"]
    written = cv2.imread(good["output"])
    assert written is not None and written.shape == world.image.shape
    assert not np.array_equal(written, world.image)  # something was drawn over the signs
    germans = {b["german"].upper() for b in good["blocks"]}
    assert germans & {line.text.upper() for line in world.lines}
    for block in good["blocks"]:
        assert block["via"] in ("phrasebook", "model", "gloss", "rule", "cache", "passthrough")
        assert 0.0 <= block["confidence"] <= 1.0


def test_a_very_wide_short_image_is_an_error_of_its_own(tmp_path):
    # 20000x1 px: scaled to the longest side allowed its height rounded to 0, and cv2.resize
    # raised, ending the whole batch with a traceback
    cv2.imwrite(str(tmp_path / "wide.png"), np.full((1, 20000, 3), 255, np.uint8))
    out = subprocess.run([sys.executable, "-m", "device", "translate-image",
                          str(tmp_path / "wide.png"), "--out", str(tmp_path / "out"), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    [result] = json.loads(out.stdout)
    assert "error" in result

