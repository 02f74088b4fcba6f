"""The OCR benchmark's scoring and the real-data line grouping (no real data needed)."""

import numpy as np
import pytest

from calibration import real_data
from calibration.bench_ocr import ceiling, norm_word, score_frame, summarize
from device.modelstore.store import ModelStore


def _quad(x, y, w, h):
    return np.float32([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])


def test_words_on_one_baseline_become_a_line_and_distant_ones_do_not():
    Word = real_data.Word
    words = [Word(_quad(100, 100, 60, 20), "EXIT", False),
             Word(_quad(168, 101, 50, 20), "ONLY", False),      # small gap: same line
             Word(_quad(400, 100, 60, 20), "SALE", False),      # far: another line
             Word(_quad(100, 140, 60, 20), "OPEN", False),      # next line down
             Word(_quad(226, 100, 30, 20), None, True)]         # unreadable: never joins
    lines = real_data.group_lines(words)
    texts = sorted(line["text"] or "<ignore>" for line in lines)
    assert texts == ["<ignore>", "EXIT ONLY", "OPEN", "SALE"]


def test_a_line_detection_and_its_text_are_scored_against_the_truth():
    truth = [(_quad(100, 100, 120, 20), "EXIT ONLY"), (_quad(100, 200, 60, 20), "OPEN")]
    ignore = [_quad(400, 300, 50, 20)]
    found = [(_quad(98, 99, 124, 22), "EXIT 0NLY"),          # right place, one letter wrong
             (_quad(402, 301, 46, 18), "###"),               # on an ignored word: not counted
             (_quad(500, 50, 60, 20), "NOISE")]              # on nothing
    counts = score_frame(found, truth, ignore)
    assert (counts["tp"], counts["found"], counts["truth"]) == (1, 2, 2)
    assert counts["covered"] == 1 and counts["on_text"] == 1
    assert counts["off_text"] == ["NOISE"]          # what the overlay would be asked to show
    summary = summarize([counts])
    assert summary["precision"] == 0.5 and summary["recall"] == 0.5
    # one substitution + the missed "OPEN" (4) + the stray "NOISE" (5) over 13 truth chars
    assert summary["cer_pct"] == pytest.approx(100 * 10 / 13, abs=0.01)


def test_unmatched_lines_are_told_apart_by_why_and_by_height():
    truth = [(_quad(10, 10, 100, 20), "MISSED"), (_quad(10, 60, 200, 20), "SPLIT LINE"),
             (_quad(10, 120, 100, 10), "MERGED"), (_quad(10, 200, 100, 30), "LOOSE"),
             (_quad(300, 10, 100, 20), "FOUND")]
    found = [(_quad(8, 58, 95, 24), "SPLIT"), (_quad(115, 58, 97, 24), "LINE"),
             (_quad(5, 115, 110, 60), "MERGED AND MORE"),       # two lines' worth of height
             (_quad(60, 200, 100, 30), "OSE"),                 # half of it, IoU 1/3
             (_quad(300, 10, 100, 20), "FOUND")]
    counts = score_frame(found, truth, [])
    assert sorted(counts["misses"]) == ["loose@24+px", "merged@8-12px", "missed@16-24px",
                                        "split@16-24px"]
    lines = summarize([counts])["unmatched_lines"]
    assert lines["by_kind"] == {"missed": 1, "split": 1, "merged": 1, "loose": 1}
    assert lines["by_height"] == {"0-8px": 0, "8-12px": 1, "12-16px": 0, "16-24px": 2,
                                  "24+px": 1}


def test_the_ceiling_counts_a_line_any_system_matches_once():
    truth = [(_quad(10, 10, 100, 20), "A"), (_quad(10, 60, 100, 20), "B"),
             (_quad(10, 120, 100, 10), "C")]
    first = score_frame([(_quad(10, 10, 100, 20), "A")], truth, [])
    second = score_frame([(_quad(10, 10, 100, 20), "A"), (_quad(10, 60, 100, 20), "B"),
                          (_quad(300, 300, 50, 20), "NOISE")], truth, [])
    later = score_frame([], [(_quad(10, 10, 100, 30), "D")], [])
    top = ceiling({"one": [first, later], "two": [second, later]})
    assert top["lines"] == 4 and top["recall_of_any"] == 0.5        # A and B; C and D by none
    assert top["hmean_at_full_precision"] == round(2 * 0.5 / 1.5, 4)
    assert top["missed_by_all_by_height"] == {"0-8px": 0, "8-12px": 1, "12-16px": 0,
                                              "16-24px": 0, "24+px": 1}
    assert ceiling({"one": [first, later]})["recall_of_any"] == 0.25


def test_word_accuracy_compares_letters_and_digits_case_insensitively():
    assert norm_word("Exit!") == norm_word("EXIT") and norm_word("0ut") != norm_word("Out")


@pytest.mark.skipif(not real_data.available(), reason="../shared/data not on this machine")
def test_the_real_validation_split_is_the_last_hundred_photos_and_their_crops():
    assert len(real_data.split("val")) == 100 and len(real_data.split("train")) == 890
    val, train = real_data.word_crops("val"), real_data.word_crops("train")
    assert len(val) + len(train) == 4447 and not {p for p, _ in val} & {p for p, _ in train}


def test_the_ocr_bench_reads_what_the_pipeline_reads_and_says_where_the_time_went():
    import cv2
    from calibration.bench_ocr import Edgelens
    from device import config as configuration
    from device.stages.recognizer import read_regions
    cfg = configuration.defaults()
    system = Edgelens(cfg, None, 1)
    detector = ModelStore.for_config(cfg).get("detector")
    frames = [cv2.imread(str(detector.directory / case["input"]))
              for case in detector.manifest["golden"][:2]]
    for frame in frames:
        found = system.ocr(frame)
        expected = read_regions(system.recognizer, frame, system.detector.detect(frame),
                                cfg.recognizer.min_confidence)
        assert [text for _q, text in found] == [reading.text for _r, reading in expected]
        assert found and all(np.allclose(q, r.polygon) for (q, _t), (r, _x) in zip(found, expected))
    assert set(system.split) == {"resize_and_model", "contours", "reading", "regions"}
    assert all(len(v) == len(frames) for v in system.split.values())
    assert system.split["regions"] == [len(system.detector.detect(f)) for f in frames]


@pytest.mark.skipif(not real_data.available(), reason="../shared/data not on this machine")
def test_photos_cut_to_other_shapes_keep_whole_lines_and_ignore_cut_ones():
    """real_data.shaped_photos: a full-height window of the aspect asked for; every legible
    truth line lies wholly inside it, and the lines it cuts are ignored regions."""
    photos = real_data.shaped_photos("val", (9, 16))
    assert len(photos) == 100
    for image, keep, ignore in photos[:20]:
        assert image.shape[:2] == (720, 405)
        for quad, _text in keep:
            assert quad[:, 0].min() >= 0 and quad[:, 0].max() <= 405
        assert all(q[:, 0].max() >= 0 and q[:, 0].min() <= 405 for q in ignore)
    assert sum(len(keep) for _, keep, _ in photos) > 200


def test_the_bench_counts_noise_the_translate_stage_would_show_as_a_translation():
    from calibration.bench_ocr import noise_shown
    from device import config as configuration
    # an invented answer for noise ('eERRREE' used to come out 'ground floor') counts; a
    # reading shown as read ('OPAC', 'H') and English kept as it is do not; German does
    noise = noise_shown(configuration.defaults(), ["eERRREE", "OPAC", "H", "EXIT", "Ausgang"])
    assert noise["readings"] == 5
    assert [text for text, _answer in noise["examples"]] == ["Ausgang"]
    assert noise["shown_as_translation"] == 1

