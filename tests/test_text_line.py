"""The recognizer's input from a line crop (device.stages.text_line)."""

import numpy as np

from device.stages.text_line import bucket_width, percentiles_u8, prepare_line


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
