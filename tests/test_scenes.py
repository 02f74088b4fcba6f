import numpy as np
import pytest

from device.synth import scenes


def _scene(seed, split="train"):
    return scenes.render_scene(np.random.default_rng(seed), split=split)


def test_same_seed_same_scene():
    a, b = _scene(7), _scene(7)
    assert np.array_equal(a.image, b.image)
    assert [line.text for line in a.lines] == [line.text for line in b.lines]
    for la, lb in zip(a.lines, b.lines):
        assert np.array_equal(la.polygon, lb.polygon)
    assert not np.array_equal(a.image, _scene(8).image)


@pytest.mark.parametrize("split", ["train", "test"])
def test_lines_are_quads_inside_the_frame(split):
    total = 0
    for seed in range(4):
        scene = _scene(100 + seed, split)
        assert scene.image.shape == (360, 640, 3) and scene.image.dtype == np.uint8
        expected = scenes.TEST_BACKGROUNDS if split == "test" else scenes.TRAIN_BACKGROUNDS
        assert scene.background_style in expected
        for line in scene.lines:
            total += 1
            assert line.polygon.shape == (4, 2) and line.polygon.dtype == np.float32
            assert (line.polygon >= 0).all()
            assert (line.polygon[:, 0] <= 639).all() and (line.polygon[:, 1] <= 359).all()
            assert line.text.strip()
            tl, tr, br, bl = line.polygon
            assert tr[0] > tl[0] and br[0] > bl[0]        # reading direction: left to right
            assert len(line.foreground) == 3 and len(line.background) == 3
    assert total >= 3


def test_other_sizes_and_bad_split():
    scene = scenes.render_scene(np.random.default_rng(3), width=320, height=240)
    assert scene.image.shape == (240, 320, 3)
    with pytest.raises(ValueError, match="split"):
        scenes.render_scene(np.random.default_rng(3), split="val")
