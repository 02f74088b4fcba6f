"""The recognizer's input from a line crop (device.stages.text_line)."""

import cv2
import numpy as np

from device.stages.text_line import bucket_width, percentiles_u8, prepare_line, to_gray


def sorted_prepare_line(image, line_height):
    """prepare_line as it was before the histogram: np.percentile on the float line."""
    gray = to_gray(np.asarray(image))
    h, w = gray.shape
    scaled, bucket = bucket_width(h, w, line_height)
    interp = cv2.INTER_AREA if h > line_height else cv2.INTER_LINEAR
    line = cv2.resize(gray, (scaled, line_height), interpolation=interp).astype(np.float32)
    lo, hi = np.percentile(line, (2, 98))
    line = np.clip((line - lo) / max(hi - lo, 8.0), 0.0, 1.0)
    return np.pad(line, ((0, 0), (0, bucket - scaled)), mode="edge")


def test_histogram_percentiles_are_numpys_to_the_last_bit():
    rng = np.random.default_rng(7)
    for size in (1, 2, 3, 50, 32 * 64, 48 * 517):
        for values in (rng.integers(0, 256, size, dtype=np.uint8),
                       rng.normal(120, 9, size).clip(0, 255).astype(np.uint8),
                       np.full(size, 200, np.uint8)):
            want = np.percentile(values.astype(np.float32), (2, 98))
            assert percentiles_u8(values, (0.02, 0.98)) == [float(v) for v in want]


def test_a_line_is_stretched_to_its_percentiles_and_padded_with_its_last_column():
    rng = np.random.default_rng(8)
    crop = rng.integers(60, 200, (20, 70), dtype=np.uint8)
    line = prepare_line(crop, 48)
    scaled, bucket = bucket_width(20, 70, 48)
    assert line.shape == (48, bucket) and line.dtype == np.float32 and bucket > scaled
    assert 0.0 <= line.min() and line.max() <= 1.0
    assert (line[:, :scaled] == 0.0).any() and (line[:, :scaled] == 1.0).any()
    assert np.array_equal(line[:, scaled:], np.repeat(line[:, scaled - 1:scaled],
                                                      bucket - scaled, axis=1))


def test_a_prepared_line_is_the_sorted_versions_to_the_last_bit():
    rng = np.random.default_rng(9)
    crops = [rng.integers(0, 256, (h, w), dtype=np.uint8)
             for h, w in ((2, 2), (30, 2), (12, 400), (48, 64), (60, 2000), (33, 97))]
    crops.append(rng.integers(0, 256, (40, 300, 3), dtype=np.uint8)[:, ::2])  # BGR, strided
    crops.append(np.full((20, 90), 77, np.uint8))                              # flat
    for crop in crops:
        for height in (32, 48):
            want, got = sorted_prepare_line(crop, height), prepare_line(crop, height)
            assert got.dtype == want.dtype and np.array_equal(got, want)
    try:
        percentiles_u8(np.zeros(4, np.float32), (0.5,))
    except ValueError as exc:
        assert "uint8" in str(exc)
    else:
        raise AssertionError("a float array was taken for uint8")
